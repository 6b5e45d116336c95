package github_test

import (
	"embed"
	"errors"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/forge/forgetest"
	"github.com/homelab-farm/farm/internal/forge/github"
)

//go:embed testdata/*.json
var testdata embed.FS

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	return forgetest.Fixture(t, testdata, name)
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		event   string
		file    string
		want    forge.Push
		wantErr error
	}{
		{name: "push", event: "push", file: "push.json", want: forge.Push{
			Event: forge.EventPush, Forge: forge.GitHub, FullName: "alice/homelab",
			WebURL: "https://github.com/alice/homelab", CloneURL: "https://github.com/alice/homelab.git",
			Ref: "refs/heads/main", Branch: "main",
			Before: "6113728f27ae82c7b1a177c8d03f9e96e0adf246", After: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
			Pusher: "alice",
		}},
		{name: "tag push", event: "push", file: "push_tag.json", want: forge.Push{
			Event: forge.EventPush, Forge: forge.GitHub, FullName: "alice/homelab",
			WebURL: "https://github.com/alice/homelab", CloneURL: "https://github.com/alice/homelab.git",
			Ref: "refs/tags/v1.0", After: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", Pusher: "alice",
		}},
		{name: "branch deleted", event: "push", file: "push_delete.json", want: forge.Push{
			Event: forge.EventPush, Forge: forge.GitHub, FullName: "alice/homelab",
			WebURL: "https://github.com/alice/homelab", CloneURL: "https://github.com/alice/homelab.git",
			Ref: "refs/heads/feature", Branch: "feature", Before: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
			After: forge.ZeroCommit, Pusher: "alice", Deleted: true,
		}},
		{name: "ping", event: "ping", file: "ping.json", want: forge.Push{
			Event: forge.EventPing, Forge: forge.GitHub, FullName: "alice/homelab",
			WebURL: "https://github.com/alice/homelab", CloneURL: "https://github.com/alice/homelab.git",
		}},
		{name: "pull request", event: "pull_request", file: "pull_request.json", want: forge.Push{
			Event: forge.EventPullRequest, Forge: forge.GitHub, FullName: "alice/homelab",
			WebURL: "https://github.com/alice/homelab", CloneURL: "https://github.com/alice/homelab.git",
			Ref: "refs/pull/7/head", After: "8e2c6b3b1d6f1d1e5f0a3c9b7e2d4f6a8b0c1d2e", Pusher: "bob", PullNumber: 7,
		}},
		{name: "pull request closed", event: "pull_request", file: "pull_request_closed.json", wantErr: forge.ErrIgnored},
		{name: "unknown event", event: "issues", file: "push.json", wantErr: forge.ErrIgnored},
		{name: "push without repository", event: "push", file: "ping.json", wantErr: forge.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := github.Parse(tt.event, fixture(t, tt.file))
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
	for _, body := range []string{``, `{`, `[]`, `{"ref": 7}`, `{"after": "xyz", "ref": "refs/heads/main", "repository": {"full_name": "a/b", "html_url": "https://github.com/a/b"}}`} {
		if _, err := github.Parse("push", []byte(body)); !errors.Is(err, forge.ErrMalformed) {
			t.Errorf("Parse(push, %q) = %v, want ErrMalformed", body, err)
		}
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	body := fixture(t, "push.json")
	old, current := []byte("old-secret"), []byte("current-secret")
	tests := []struct {
		name    string
		sig     string
		secrets [][]byte
		want    int
		wantErr error
	}{
		{name: "current secret", sig: github.Sign(body, current), secrets: [][]byte{current}, want: 0},
		{name: "rotation: second secret", sig: github.Sign(body, old), secrets: [][]byte{current, old}, want: 1},
		{name: "wrong secret", sig: github.Sign(body, []byte("nope")), secrets: [][]byte{current, old}, want: -1, wantErr: forge.ErrSignature},
		{name: "missing", sig: "", secrets: [][]byte{current}, want: -1, wantErr: forge.ErrSignature},
		{name: "sha1 refused", sig: "sha1=" + forge.SignHex(body, current)[:40], secrets: [][]byte{current}, want: -1, wantErr: forge.ErrSignature},
		{name: "not hex", sig: "sha256=zz", secrets: [][]byte{current}, want: -1, wantErr: forge.ErrSignature},
		{name: "empty secret never matches", sig: github.Sign(body, nil), secrets: [][]byte{nil}, want: -1, wantErr: forge.ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := github.Verify(tt.sig, body, tt.secrets)
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("Verify = %d, %v; want %d, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	tampered := append([]byte{}, body...)
	tampered[10] ^= 1
	if _, err := github.Verify(github.Sign(body, current), tampered, [][]byte{current}); !errors.Is(err, forge.ErrSignature) {
		t.Errorf("Verify(tampered body) = %v, want ErrSignature", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"push.json", "push_tag.json", "push_delete.json", "ping.json", "pull_request.json"} {
		b := fixture(f, name)
		for _, ev := range []string{"push", "ping", "pull_request"} {
			f.Add(ev, b)
		}
	}
	f.Fuzz(func(t *testing.T, event string, body []byte) {
		p, err := github.Parse(event, body)
		if err != nil {
			if !errors.Is(err, forge.ErrIgnored) && !errors.Is(err, forge.ErrMalformed) {
				t.Fatalf("Parse error %v is neither ErrIgnored nor ErrMalformed", err)
			}
			return
		}
		if p.Forge != forge.GitHub {
			t.Fatalf("Forge = %q", p.Forge)
		}
		if p.Event != forge.EventPing && !p.Deleted && !forge.IsCommitID(p.After) {
			t.Fatalf("accepted %s with commit %q", p.Event, p.After)
		}
	})
}

func FuzzVerify(f *testing.F) {
	body := fixture(f, "push.json")
	f.Add(github.Sign(body, []byte("s3cret")), body, []byte("s3cret"))
	f.Add("sha256=", []byte("{}"), []byte("k"))
	f.Add("sha1=00", []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, sig string, body, secret []byte) {
		i, err := github.Verify(sig, body, [][]byte{secret})
		right := github.Sign(body, secret)
		if len(secret) > 0 && sig == right && err != nil {
			t.Fatalf("Verify(right signature) = %d, %v", i, err)
		}
		if err == nil && (len(secret) == 0 || !strings.EqualFold(sig, right)) {
			t.Fatalf("Verify(%q) accepted; the signature is %q", sig, right)
		}
	})
}
