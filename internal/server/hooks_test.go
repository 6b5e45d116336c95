package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/file"
	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/forge/github"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/queue/sqlite"
	"github.com/homelab-farm/farm/internal/server/servertest"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/testenv"
)

// startServer serves the route table of the configuration in cfgFile
// ("": the defaults) over a new SQLite queue and state, and backend (nil:
// none), and returns its base URL and its log.
func startServer(t *testing.T, cfgFile string, backend cache.Backend) (string, *testenv.Buffer) {
	t.Helper()
	ctx := context.Background()
	cfg := config.Default()
	if cfgFile != "" {
		var err error
		if cfg, err = config.LoadFile(cfgFile); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	q, err := sqlite.Open(ctx, filepath.Join(dir, "queue.db"), queue.Options{MaxAttempts: cfg.Queue.MaxAttempts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	st, err := state.Open(ctx, filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &testenv.Buffer{}
	s := New(Deps{Config: cfg, Jobs: q, State: st, Reports: st, Cache: backend, LogDir: filepath.Join(dir, "logs"),
		Log: slog.New(slog.NewTextHandler(logs, nil))})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv.URL, logs
}

func TestWebhookResponses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base, logs := startServer(t, servertest.WriteConfig(t, dir, ""), nil)

	push := servertest.ForgeFixture(t, "github/push.json")
	fjPush := servertest.Replace(servertest.ForgeFixture(t, "forgejo/push_gitea.json"))
	big := append(bytes.Repeat([]byte(" "), 25<<20), push...)

	tests := []struct {
		name       string
		req        servertest.Hook
		wantStatus int
		wantJobs   int // evaluations queued after this request (cumulative)
	}{
		{"github ping", servertest.GitHubHook("ping", "p1", servertest.ForgeFixture(t, "github/ping.json"), servertest.GHSecret), http.StatusOK, 0},
		{"github missing signature", servertest.GitHubHook("push", "d1", push, nil), http.StatusUnauthorized, 0},
		{"github wrong secret", servertest.GitHubHook("push", "d1", push, []byte("guess")), http.StatusUnauthorized, 0},
		{"github another repository's secret", servertest.GitHubHook("push", "d1", push, servertest.OtherGHSecret), http.StatusUnauthorized, 0},
		{"github tampered body", servertest.Hook{Path: "/hooks/github", Body: servertest.Replace(push, "zram", "zraM"),
			Headers: servertest.GitHubHook("push", "d1", push, servertest.GHSecret).Headers}, http.StatusUnauthorized, 0},
		{"github sha1 only", servertest.Hook{Path: "/hooks/github", Body: push,
			Headers: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature": "sha1=" + forge.SignHex(push, servertest.GHSecret)[:40]}}, http.StatusUnauthorized, 0},
		{"github body too large", servertest.GitHubHook("push", "d1", big, servertest.GHSecret), http.StatusRequestEntityTooLarge, 0},
		{"github malformed JSON", servertest.GitHubHook("push", "d1", []byte(`{"ref": "refs/heads/main",`), servertest.GHSecret), http.StatusBadRequest, 0},
		{"github push without commit", servertest.GitHubHook("push", "d1", servertest.Replace(push, servertest.TestCommit, "nope"), servertest.GHSecret), http.StatusBadRequest, 0},
		{"github unknown event", servertest.GitHubHook("issues", "d1", push, servertest.GHSecret), http.StatusNoContent, 0},
		{"github ignored branch", servertest.GitHubHook("push", "d1", servertest.Replace(push, "refs/heads/main", "refs/heads/wip"), servertest.GHSecret), http.StatusNoContent, 0},
		{"github tag", servertest.GitHubHook("push", "d1", servertest.ForgeFixture(t, "github/push_tag.json"), servertest.GHSecret), http.StatusNoContent, 0},
		{"github branch deleted", servertest.GitHubHook("push", "d1", servertest.Replace(servertest.ForgeFixture(t, "github/push_delete.json"), "refs/heads/feature", "refs/heads/staging"), servertest.GHSecret), http.StatusNoContent, 0},
		{"github unconfigured repository", servertest.GitHubHook("push", "d1", servertest.Replace(push, "alice/homelab", "alice/other"), servertest.OtherGHSecret), http.StatusNoContent, 0},
		{"github push", servertest.GitHubHook("push", "d1", push, servertest.GHSecret), http.StatusAccepted, 1},
		{"github replayed delivery", servertest.GitHubHook("push", "d1", push, servertest.GHSecret), http.StatusAccepted, 1},
		{"github form-encoded push", servertest.Hook{Path: "/hooks/github", Body: []byte("payload=" + urlQueryEscape(string(servertest.Replace(push, servertest.TestCommit, strings.Repeat("b", 40))))),
			Headers: map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-form", "Content-Type": "application/x-www-form-urlencoded"}}, http.StatusAccepted, 2},
		{"github pull request", servertest.GitHubHook("pull_request", "d-pr", servertest.ForgeFixture(t, "github/pull_request.json"), servertest.GHSecret), http.StatusAccepted, 3},
		{"forgejo GitHub-style signature only", servertest.Hook{Path: "/hooks/forgejo", Body: fjPush,
			Headers: map[string]string{"X-Forgejo-Event": "push", "X-Hub-Signature-256": github.Sign(fjPush, servertest.FJSecret)}}, http.StatusUnauthorized, 3},
		{"forgejo wrong secret", servertest.ForgejoHook("push", "f1", fjPush, servertest.CBSecret), http.StatusUnauthorized, 3},
		{"bad X-Forgejo-Signature not rescued by a good X-Gitea-Signature", servertest.Hook{Path: "/hooks/forgejo", Body: fjPush,
			Headers: map[string]string{"X-Forgejo-Event": "push", "X-Forgejo-Signature": forge.SignHex(fjPush, []byte("x")),
				"X-Gitea-Signature": forge.SignHex(fjPush, servertest.FJSecret)}}, http.StatusUnauthorized, 3},
		{"forgejo malformed JSON", servertest.ForgejoHook("push", "f1", []byte(`[`), servertest.FJSecret), http.StatusBadRequest, 3},
		{"forgejo unknown event", servertest.ForgejoHook("issues", "f1", fjPush, servertest.FJSecret), http.StatusNoContent, 3},
		{"forgejo ping", servertest.ForgejoHook("ping", "f0", []byte(`{}`), servertest.FJSecret), http.StatusOK, 3},
		{"forgejo push, rotated secret", servertest.ForgejoHook("push", "f1", fjPush, servertest.FJOldSecret), http.StatusAccepted, 4},
		{"gitea headers", servertest.Hook{Path: "/hooks/forgejo", Body: servertest.Replace(fjPush, "bffeb74224043ba2feb48d137756c8a9331c449a", strings.Repeat("c", 40)),
			Headers: map[string]string{"X-Gitea-Event": "push", "X-Gitea-Delivery": "g1",
				"X-Gitea-Signature": forge.SignHex(servertest.Replace(fjPush, "bffeb74224043ba2feb48d137756c8a9331c449a", strings.Repeat("c", 40)), servertest.FJSecret)}}, http.StatusAccepted, 5},
	}
	for _, tt := range tests {
		ok := t.Run(tt.name, func(t *testing.T) {
			if tt.req.Headers["Content-Type"] == "application/x-www-form-urlencoded" {
				tt.req.Headers["X-Hub-Signature-256"] = github.Sign(tt.req.Body, servertest.GHSecret)
			}
			status, body := servertest.Post(t, base, tt.req)
			if status != tt.wantStatus {
				t.Errorf("status = %d (%s), want %d", status, body, tt.wantStatus)
			}
			if got := len(servertest.Jobs(t, base, "")); got != tt.wantJobs {
				t.Errorf("evaluations = %d, want %d", got, tt.wantJobs)
			}
		})
		if !ok {
			break // later cases count on earlier ones
		}
	}
	for _, s := range [][]byte{servertest.GHSecret, servertest.CBSecret, servertest.FJSecret, servertest.FJOldSecret, servertest.OtherGHSecret} {
		if strings.Contains(logs.String(), string(s)) {
			t.Errorf("log contains secret %q", s)
		}
	}

	t.Run("chunked body over the limit", func(t *testing.T) {
		// No Content-Length: the limit is enforced while reading.
		body := io.MultiReader(bytes.NewReader(big), bytes.NewReader(nil))
		r, err := http.NewRequest(http.MethodPost, base+"/hooks/github", body)
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("X-GitHub-Event", "push")
		r.Header.Set("X-Hub-Signature-256", github.Sign(big, servertest.GHSecret))
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || r.ContentLength != 0 {
			t.Errorf("status = %d (content length %d), want 413", resp.StatusCode, r.ContentLength)
		}
		if got := len(servertest.Jobs(t, base, "")); got != 5 {
			t.Errorf("evaluations = %d, want 5", got)
		}
	})
	t.Run("method not allowed", func(t *testing.T) {
		resp, err := http.Get(base + "/hooks/github")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET /hooks/github = %d, want 405", resp.StatusCode)
		}
	})
	t.Run("jobs filter", func(t *testing.T) {
		q := servertest.Jobs(t, base, "?state=queued&repo=homelab")
		if len(q) != 2 { // the pull request and main's newest commit; the older ones on main are superseded
			t.Errorf("queued = %d, want 2: %+v", len(q), q)
		}
		resp, err := http.Get(base + "/api/jobs?state=bogus")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("state=bogus: %d, want 400", resp.StatusCode)
		}
	})
}

func urlQueryEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// TestSameCommitThreeRemotes: the same commit pushed to GitHub, Codeberg
// and a self-hosted Forgejo is one evaluation that remembers all three.
func TestSameCommitThreeRemotes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base, _ := startServer(t, servertest.WriteConfig(t, dir, ""), nil)

	gh := servertest.ForgeFixture(t, "github/push.json")
	cb := servertest.Replace(servertest.ForgeFixture(t, "forgejo/push.json"), "bffeb74224043ba2feb48d137756c8a9331c449a", servertest.TestCommit)
	fj := servertest.Replace(servertest.ForgeFixture(t, "forgejo/push_gitea.json"), "bffeb74224043ba2feb48d137756c8a9331c449a", servertest.TestCommit)
	reqs := []servertest.Hook{
		servertest.GitHubHook("push", "gh-1", gh, servertest.GHSecret),
		servertest.ForgejoHook("push", "cb-1", cb, servertest.CBSecret),
		servertest.ForgejoHook("push", "fj-1", fj, servertest.FJSecret),
		servertest.ForgejoHook("push", "fj-1", fj, servertest.FJSecret), // replay
	}
	var ids []int64
	for _, r := range reqs {
		status, body := servertest.Post(t, base, r)
		if status != http.StatusAccepted {
			t.Fatalf("POST %s = %d %s", r.Path, status, body)
		}
		var res farmapi.EnqueueResponse
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Job)
	}
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Fatalf("job ids = %v, want one", ids)
		}
	}
	evs := servertest.Jobs(t, base, "")
	if len(evs) != 1 {
		t.Fatalf("evaluations = %d, want 1", len(evs))
	}
	var urls []string
	for _, r := range evs[0].Remotes {
		urls = append(urls, r.URL)
	}
	want := []string{"https://codeberg.org/alice/homelab", "https://git.home.example.org/alice/homelab", "https://github.com/alice/homelab"}
	if strings.Join(urls, " ") != strings.Join(want, " ") {
		t.Errorf("remotes = %v, want %v", urls, want)
	}
	if !evs[0].Deploy || evs[0].Branch != "main" {
		t.Errorf("evaluation deploy=%v branch=%q, want true, main", evs[0].Deploy, evs[0].Branch)
	}
}

// TestCacheMounted: the binary cache is served read-only at /nix-cache/.
func TestCacheMounted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(filepath.Join(state, "cache"), 0o755); err != nil {
		t.Fatal(err)
	}
	info := "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n"
	if err := os.WriteFile(filepath.Join(state, "cache", "nix-cache-info"), []byte(info), 0o644); err != nil {
		t.Fatal(err)
	}
	backend, err := file.Open(filepath.Join(state, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	base, _ := startServer(t, "", backend)
	resp, err := http.Get(base + "/nix-cache/nix-cache-info")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != info {
		t.Errorf("GET /nix-cache/nix-cache-info = %d %q, want 200 %q", resp.StatusCode, b, info)
	}
	resp, err = http.Post(base+"/nix-cache/nix-cache-info", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /nix-cache/ = %d, want 405", resp.StatusCode)
	}
}

// TestExampleConfig: examples/builder.toml configures a builder that takes
// a webhook signed with its demo secret.
func TestExampleConfig(t *testing.T) {
	t.Parallel()
	base, _ := startServer(t, "../../examples/builder.toml", nil)
	push := servertest.ForgeFixture(t, "github/push.json")
	if s, b := servertest.Post(t, base, servertest.GitHubHook("push", "ex1", push, []byte("demo-github-webhook-secret"))); s != http.StatusAccepted {
		t.Fatalf("push signed with the example's secret = %d %s", s, b)
	}
	if s, _ := servertest.Post(t, base, servertest.GitHubHook("push", "ex2", push, []byte("demo-codeberg-webhook-secret"))); s != http.StatusUnauthorized {
		t.Fatalf("push signed with another remote's secret = %d, want 401", s)
	}
}
