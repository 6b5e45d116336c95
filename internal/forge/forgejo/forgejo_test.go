package forgejo_test

import (
	"embed"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/forge/forgejo"
	"github.com/homelab-farm/farm/internal/forge/forgetest"
)

//go:embed testdata/*.json
var testdata embed.FS

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	return forgetest.Fixture(t, testdata, name)
}

func TestParse(t *testing.T) {
	t.Parallel()
	codeberg := forge.Push{Forge: forge.Forgejo, FullName: "alice/homelab",
		WebURL: "https://codeberg.org/alice/homelab", CloneURL: "https://codeberg.org/alice/homelab.git"}
	with := func(p forge.Push, f func(*forge.Push)) forge.Push { f(&p); return p }
	tests := []struct {
		name    string
		event   string
		file    string
		want    forge.Push
		wantErr error
	}{
		{name: "push", event: "push", file: "push.json", want: with(codeberg, func(p *forge.Push) {
			p.Event, p.Ref, p.Branch, p.Pusher = forge.EventPush, "refs/heads/main", "main", "alice"
			p.Before, p.After = "28e1879d029cb852e4844d9c718537df08844e03", "bffeb74224043ba2feb48d137756c8a9331c449a"
		})},
		{name: "gitea mirror push", event: "push", file: "push_gitea.json", want: forge.Push{
			Event: forge.EventPush, Forge: forge.Forgejo, FullName: "alice/homelab",
			WebURL: "https://git.home.example.org/alice/homelab", CloneURL: "https://git.home.example.org/alice/homelab.git",
			Ref: "refs/heads/main", Branch: "main", Pusher: "alice",
			Before: "28e1879d029cb852e4844d9c718537df08844e03", After: "bffeb74224043ba2feb48d137756c8a9331c449a",
		}},
		{name: "tag", event: "push", file: "push_tag.json", want: with(codeberg, func(p *forge.Push) {
			p.Event, p.Ref, p.Pusher = forge.EventPush, "refs/tags/v2", "alice"
			p.After = "bffeb74224043ba2feb48d137756c8a9331c449a"
		})},
		{name: "branch deleted", event: "push", file: "push_delete.json", want: with(codeberg, func(p *forge.Push) {
			p.Event, p.Ref, p.Branch, p.Pusher, p.Deleted = forge.EventPush, "refs/heads/old", "old", "alice", true
			p.Before, p.After = "bffeb74224043ba2feb48d137756c8a9331c449a", forge.ZeroCommit
		})},
		{name: "pull request", event: "pull_request", file: "pull_request.json", want: with(codeberg, func(p *forge.Push) {
			p.Event, p.Ref, p.Pusher, p.PullNumber = forge.EventPullRequest, "refs/pull/12/head", "alice", 12
			p.After = "4c7d1b2a9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b"
		})},
		{name: "pull request closed", event: "pull_request", file: "pull_request_closed.json", wantErr: forge.ErrIgnored},
		{name: "ping", event: "ping", file: "push.json", want: forge.Push{Event: forge.EventPing, Forge: forge.Forgejo}},
		{name: "unknown event", event: "issues", file: "push.json", wantErr: forge.ErrIgnored},
		{name: "pull request body as push", event: "push", file: "pull_request.json", wantErr: forge.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := forgejo.Parse(tt.event, fixture(t, tt.file))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Parse error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Parse =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	t.Parallel()
	for _, body := range []string{``, `{`, `[]`, `{"ref": 7}`, `{} {}`, `null`} {
		if _, err := forgejo.Parse("push", []byte(body)); !errors.Is(err, forge.ErrMalformed) {
			t.Errorf("Parse(push, %q) = %v, want ErrMalformed", body, err)
		}
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                 string
		h                    map[string]string
		event, delivery, sig string
	}{
		{name: "forgejo", h: map[string]string{"X-Forgejo-Event": "push", "X-Forgejo-Delivery": "d1", "X-Forgejo-Signature": "aa",
			"X-Gitea-Signature": "bb", "X-GitHub-Event": "issues"}, event: "push", delivery: "d1", sig: "aa"},
		{name: "gitea", h: map[string]string{"X-Gitea-Event": "push", "X-Gitea-Delivery": "d2", "X-Gitea-Signature": "bb",
			"X-Hub-Signature-256": "sha256=cc"}, event: "push", delivery: "d2", sig: "bb"},
		{name: "github headers only", h: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=cc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.h {
				h.Set(k, v)
			}
			e, d, s := forgejo.Headers(h)
			if e != tt.event || d != tt.delivery || s != tt.sig {
				t.Errorf("Headers = %q %q %q, want %q %q %q", e, d, s, tt.event, tt.delivery, tt.sig)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	body := fixture(t, "push.json")
	a, b := []byte("secret-a"), []byte("secret-b")
	tests := []struct {
		name    string
		sig     string
		want    int
		wantErr error
	}{
		{name: "first", sig: forge.SignHex(body, a), want: 0},
		{name: "second (rotation)", sig: forge.SignHex(body, b), want: 1},
		{name: "upper-case hex", sig: strings.ToUpper(forge.SignHex(body, b)), want: 1},
		{name: "wrong", sig: forge.SignHex(body, []byte("x")), want: -1, wantErr: forge.ErrSignature},
		{name: "github style prefix", sig: "sha256=" + forge.SignHex(body, a), want: -1, wantErr: forge.ErrSignature},
		{name: "empty", sig: "", want: -1, wantErr: forge.ErrSignature},
		{name: "short", sig: forge.SignHex(body, a)[:62], want: -1, wantErr: forge.ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := forgejo.Verify(tt.sig, body, [][]byte{a, b})
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("Verify = %d, %v; want %d, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"push.json", "push_gitea.json", "push_tag.json", "push_delete.json", "pull_request.json"} {
		b := fixture(f, name)
		for _, ev := range []string{"push", "ping", "pull_request"} {
			f.Add(ev, b)
		}
	}
	f.Fuzz(func(t *testing.T, event string, body []byte) {
		p, err := forgejo.Parse(event, body)
		if err != nil {
			if !errors.Is(err, forge.ErrIgnored) && !errors.Is(err, forge.ErrMalformed) {
				t.Fatalf("Parse error %v is neither ErrIgnored nor ErrMalformed", err)
			}
			return
		}
		if p.Forge != forge.Forgejo {
			t.Fatalf("Forge = %q", p.Forge)
		}
		if p.Event != forge.EventPing && (p.FullName == "" || (!p.Deleted && !forge.IsCommitID(p.After))) {
			t.Fatalf("accepted %s without repository or commit: %+v", p.Event, p)
		}
	})
}

func FuzzVerify(f *testing.F) {
	body := fixture(f, "push.json")
	f.Add(forge.SignHex(body, []byte("s3cret")), body, []byte("s3cret"))
	f.Add("", []byte("{}"), []byte("k"))
	f.Add("zz", []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, sig string, body, secret []byte) {
		i, err := forgejo.Verify(sig, body, [][]byte{secret})
		right := forge.SignHex(body, secret)
		if len(secret) > 0 && sig == right && err != nil {
			t.Fatalf("Verify(right signature) = %d, %v", i, err)
		}
		if err == nil && (len(secret) == 0 || !strings.EqualFold(strings.TrimSpace(sig), right)) {
			t.Fatalf("Verify(%q) accepted; the signature is %q", sig, right)
		}
	})
}
