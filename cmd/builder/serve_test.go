package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/forge/github"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/queue/sqlite"
	"github.com/homelab-farm/farm/internal/testenv"
)

// Secrets of the test configuration's remotes.
var (
	ghSecret       = []byte("gh-secret")
	cbSecret       = []byte("codeberg-secret")
	fjSecret       = []byte("forgejo-secret")
	fjOldSecret    = []byte("forgejo-old-secret")
	otherGHSecret  = []byte("other-repo-secret")
	testCommit     = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
	forgejoFixture = "../../internal/forge/forgejo/testdata/"
	githubFixture  = "../../internal/forge/github/testdata/"
)

// writeServeConfig writes a configuration with one repository on three
// remotes (GitHub, Codeberg, a self-hosted Forgejo) and a second GitHub
// repository, and returns its path.
func writeServeConfig(t *testing.T, dir string, extra string) string {
	t.Helper()
	for name, s := range map[string][]byte{"gh": ghSecret, "cb": cbSecret, "fj": fjSecret, "fj-old": fjOldSecret, "other": otherGHSecret} {
		if err := os.WriteFile(filepath.Join(dir, name), append(s, '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	src := extra + `
[[repository]]
name = "homelab"
deploy_branch = "main"
branches = ["main", "staging"]
  [[repository.remote]]
  forge = "github"
  url = "https://github.com/alice/homelab"
  secret_files = ["gh"]
  [[repository.remote]]
  forge = "codeberg"
  url = "https://codeberg.org/alice/homelab"
  secret_files = ["cb"]
  [[repository.remote]]
  forge = "forgejo"
  url = "https://git.home.example.org/alice/homelab"
  secret_files = ["fj", "fj-old"]

[[repository]]
name = "dotfiles"
  [[repository.remote]]
  forge = "github"
  url = "https://github.com/alice/dotfiles"
  secret_files = ["other"]
`
	file := filepath.Join(dir, "builder.toml")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// logWatcher is a concurrency-safe stderr that remembers every line.
type logWatcher struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines []string
	seen  chan struct{}
}

func newLogWatcher() *logWatcher { return &logWatcher{seen: make(chan struct{}, 1)} }

func (l *logWatcher) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.WriteString(line)
			break
		}
		l.lines = append(l.lines, line)
	}
	select {
	case l.seen <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (l *logWatcher) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "")
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// waitAddr waits for the "listening" line and returns the address.
func (l *logWatcher) waitAddr(t testing.TB, errc <-chan error) string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		if m := listeningRE.FindStringSubmatch(l.String()); m != nil {
			return m[1]
		}
		select {
		case <-l.seen:
		case err := <-errc:
			t.Fatalf("serve exited early: %v\n%s", err, l)
		case <-deadline:
			t.Fatalf("serve did not start:\n%s", l)
		}
	}
}

// startServe runs `builder serve` in-process on 127.0.0.1:0 and returns
// its base URL; the test's cleanup stops it and checks it stopped cleanly.
func startServe(t *testing.T, args ...string) (string, *logWatcher) {
	t.Helper()
	return startServeWith(t, serveHooks{}, args...)
}

// holdJobs is a processor that holds each job for d, then completes it
// without evaluating: for tests of claims, leases and crash recovery.
func holdJobs(d time.Duration) pipeline.Processor {
	return func(ctx context.Context, job queue.Job) ([]byte, error) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return []byte(`{"held":true}`), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// startServeWith runs serve in this process with hooks.
func startServeWith(t *testing.T, hooks serveHooks, args ...string) (string, *logWatcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := newLogWatcher()
	errc := make(chan error, 1)
	// No workers unless a test asks: these tests look at the queue itself.
	args = append([]string{"--listen", "127.0.0.1:0", "--workers", "0"}, args...)
	go func() { errc <- runServeWith(ctx, args, mapEnv(nil), io.Discard, logs, hooks) }()
	addr := logs.waitAddr(t, errc)
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("serve returned %v", err)
			}
		case <-time.After(drainTimeout + 5*time.Second):
			t.Errorf("serve did not stop")
		}
	})
	return "http://" + addr, logs
}

func readFixture(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type hookRequest struct {
	path    string
	headers map[string]string
	body    []byte
}

func githubRequest(event, delivery string, body, secret []byte) hookRequest {
	h := map[string]string{"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "Content-Type": "application/json"}
	if secret != nil {
		h["X-Hub-Signature-256"] = github.Sign(body, secret)
	}
	return hookRequest{path: "/hooks/github", headers: h, body: body}
}

func forgejoRequest(event, delivery string, body, secret []byte) hookRequest {
	h := map[string]string{"X-Forgejo-Event": event, "X-Forgejo-Delivery": delivery, "Content-Type": "application/json",
		// Forgejo also sends GitHub-style headers; they must not matter.
		"X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
	if secret != nil {
		h["X-Forgejo-Signature"] = forge.SignHex(body, secret)
	}
	return hookRequest{path: "/hooks/forgejo", headers: h, body: body}
}

func post(t testing.TB, base string, req hookRequest) (int, []byte) {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, base+req.path, bytes.NewReader(req.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range req.headers {
		r.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatalf("POST %s: %v", req.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func queueJobs(t *testing.T, base, query string) []queue.Job {
	t.Helper()
	resp, err := http.Get(base + "/api/jobs" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/jobs = %s", resp.Status)
	}
	var v jobsResponse
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v.Jobs
}

// replace returns body with every old replaced by new.
func replace(body []byte, pairs ...string) []byte {
	return []byte(strings.NewReplacer(pairs...).Replace(string(body)))
}

func TestServeWebhookResponses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := writeServeConfig(t, dir, "")
	base, logs := startServe(t, "--config", cfg, "--state-dir", filepath.Join(dir, "state"))

	push := readFixture(t, githubFixture+"push.json")
	fjPush := replace(readFixture(t, forgejoFixture+"push_gitea.json"))
	big := append(bytes.Repeat([]byte(" "), 25<<20), push...)

	tests := []struct {
		name       string
		req        hookRequest
		wantStatus int
		wantJobs   int // evaluations queued after this request (cumulative)
	}{
		{"github ping", githubRequest("ping", "p1", readFixture(t, githubFixture+"ping.json"), ghSecret), http.StatusOK, 0},
		{"github missing signature", githubRequest("push", "d1", push, nil), http.StatusUnauthorized, 0},
		{"github wrong secret", githubRequest("push", "d1", push, []byte("guess")), http.StatusUnauthorized, 0},
		{"github another repository's secret", githubRequest("push", "d1", push, otherGHSecret), http.StatusUnauthorized, 0},
		{"github tampered body", hookRequest{path: "/hooks/github", body: replace(push, "zram", "zraM"),
			headers: githubRequest("push", "d1", push, ghSecret).headers}, http.StatusUnauthorized, 0},
		{"github sha1 only", hookRequest{path: "/hooks/github", body: push,
			headers: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature": "sha1=" + forge.SignHex(push, ghSecret)[:40]}}, http.StatusUnauthorized, 0},
		{"github body too large", githubRequest("push", "d1", big, ghSecret), http.StatusRequestEntityTooLarge, 0},
		{"github malformed JSON", githubRequest("push", "d1", []byte(`{"ref": "refs/heads/main",`), ghSecret), http.StatusBadRequest, 0},
		{"github push without commit", githubRequest("push", "d1", replace(push, testCommit, "nope"), ghSecret), http.StatusBadRequest, 0},
		{"github unknown event", githubRequest("issues", "d1", push, ghSecret), http.StatusNoContent, 0},
		{"github ignored branch", githubRequest("push", "d1", replace(push, "refs/heads/main", "refs/heads/wip"), ghSecret), http.StatusNoContent, 0},
		{"github tag", githubRequest("push", "d1", readFixture(t, githubFixture+"push_tag.json"), ghSecret), http.StatusNoContent, 0},
		{"github branch deleted", githubRequest("push", "d1", replace(readFixture(t, githubFixture+"push_delete.json"), "refs/heads/feature", "refs/heads/staging"), ghSecret), http.StatusNoContent, 0},
		{"github unconfigured repository", githubRequest("push", "d1", replace(push, "alice/homelab", "alice/other"), otherGHSecret), http.StatusNoContent, 0},
		{"github push", githubRequest("push", "d1", push, ghSecret), http.StatusAccepted, 1},
		{"github replayed delivery", githubRequest("push", "d1", push, ghSecret), http.StatusAccepted, 1},
		{"github form-encoded push", hookRequest{path: "/hooks/github", body: []byte("payload=" + urlQueryEscape(string(replace(push, testCommit, strings.Repeat("b", 40))))),
			headers: map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-form", "Content-Type": "application/x-www-form-urlencoded"}}, http.StatusAccepted, 2},
		{"github pull request", githubRequest("pull_request", "d-pr", readFixture(t, githubFixture+"pull_request.json"), ghSecret), http.StatusAccepted, 3},
		{"forgejo GitHub-style signature only", hookRequest{path: "/hooks/forgejo", body: fjPush,
			headers: map[string]string{"X-Forgejo-Event": "push", "X-Hub-Signature-256": github.Sign(fjPush, fjSecret)}}, http.StatusUnauthorized, 3},
		{"forgejo wrong secret", forgejoRequest("push", "f1", fjPush, cbSecret), http.StatusUnauthorized, 3},
		{"bad X-Forgejo-Signature not rescued by a good X-Gitea-Signature", hookRequest{path: "/hooks/forgejo", body: fjPush,
			headers: map[string]string{"X-Forgejo-Event": "push", "X-Forgejo-Signature": forge.SignHex(fjPush, []byte("x")),
				"X-Gitea-Signature": forge.SignHex(fjPush, fjSecret)}}, http.StatusUnauthorized, 3},
		{"forgejo malformed JSON", forgejoRequest("push", "f1", []byte(`[`), fjSecret), http.StatusBadRequest, 3},
		{"forgejo unknown event", forgejoRequest("issues", "f1", fjPush, fjSecret), http.StatusNoContent, 3},
		{"forgejo ping", forgejoRequest("ping", "f0", []byte(`{}`), fjSecret), http.StatusOK, 3},
		{"forgejo push, rotated secret", forgejoRequest("push", "f1", fjPush, fjOldSecret), http.StatusAccepted, 4},
		{"gitea headers", hookRequest{path: "/hooks/forgejo", body: replace(fjPush, "bffeb74224043ba2feb48d137756c8a9331c449a", strings.Repeat("c", 40)),
			headers: map[string]string{"X-Gitea-Event": "push", "X-Gitea-Delivery": "g1",
				"X-Gitea-Signature": forge.SignHex(replace(fjPush, "bffeb74224043ba2feb48d137756c8a9331c449a", strings.Repeat("c", 40)), fjSecret)}}, http.StatusAccepted, 5},
	}
	for _, tt := range tests {
		ok := t.Run(tt.name, func(t *testing.T) {
			if tt.req.headers["Content-Type"] == "application/x-www-form-urlencoded" {
				tt.req.headers["X-Hub-Signature-256"] = github.Sign(tt.req.body, ghSecret)
			}
			status, body := post(t, base, tt.req)
			if status != tt.wantStatus {
				t.Errorf("status = %d (%s), want %d", status, body, tt.wantStatus)
			}
			if got := len(queueJobs(t, base, "")); got != tt.wantJobs {
				t.Errorf("evaluations = %d, want %d", got, tt.wantJobs)
			}
		})
		if !ok {
			break // later cases count on earlier ones
		}
	}
	for _, s := range [][]byte{ghSecret, cbSecret, fjSecret, fjOldSecret, otherGHSecret} {
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
		r.Header.Set("X-Hub-Signature-256", github.Sign(big, ghSecret))
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || r.ContentLength != 0 {
			t.Errorf("status = %d (content length %d), want 413", resp.StatusCode, r.ContentLength)
		}
		if got := len(queueJobs(t, base, "")); got != 5 {
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
		q := queueJobs(t, base, "?state=queued&repo=homelab")
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

// TestServeSameCommitThreeRemotes: the same commit pushed to GitHub, Codeberg
// and a self-hosted Forgejo is one evaluation that remembers all three.
func TestServeSameCommitThreeRemotes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base, _ := startServe(t, "--config", writeServeConfig(t, dir, ""), "--state-dir", filepath.Join(dir, "state"))

	gh := readFixture(t, githubFixture+"push.json")
	cb := replace(readFixture(t, forgejoFixture+"push.json"), "bffeb74224043ba2feb48d137756c8a9331c449a", testCommit)
	fj := replace(readFixture(t, forgejoFixture+"push_gitea.json"), "bffeb74224043ba2feb48d137756c8a9331c449a", testCommit)
	reqs := []hookRequest{
		githubRequest("push", "gh-1", gh, ghSecret),
		forgejoRequest("push", "cb-1", cb, cbSecret),
		forgejoRequest("push", "fj-1", fj, fjSecret),
		forgejoRequest("push", "fj-1", fj, fjSecret), // replay
	}
	var ids []int64
	for _, r := range reqs {
		status, body := post(t, base, r)
		if status != http.StatusAccepted {
			t.Fatalf("POST %s = %d %s", r.path, status, body)
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
	evs := queueJobs(t, base, "")
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

// TestServeCacheMounted: the binary cache is served read-only at /nix-cache/.
func TestServeCacheMounted(t *testing.T) {
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
	base, _ := startServe(t, "--state-dir", state)
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

// TestServeConfigErrors: a bad config is refused at start with file and line.
func TestServeConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(file, []byte("listen = \"127.0.0.1:0\"\n[queue]\nlease = \"often\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := runServe(context.Background(), []string{"--config", file, "--state-dir", dir}, mapEnv(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), file+":3:") {
		t.Fatalf("runServe(bad config) = %v, want an error at %s:3", err, file)
	}
	if err := runServe(context.Background(), []string{"--listen", "127.0.0.1:0"}, mapEnv(nil), io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "state directory") {
		t.Fatalf("runServe(no state dir) = %v, want a state directory error", err)
	}
}

// TestServeEnvOverrides: environment variables override the file, flags override both.
func TestServeEnvOverrides(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := writeServeConfig(t, dir, "listen = \"127.0.0.1:1\"\nstate_dir = \"nowhere/at/all\"\n")
	state := filepath.Join(dir, "from-env")
	ctx, cancel := context.WithCancel(context.Background())
	logs := newLogWatcher()
	errc := make(chan error, 1)
	env := mapEnv(map[string]string{"BUILDER_CONFIG": cfg, "BUILDER_STATE_DIR": state, "BUILDER_LISTEN": "127.0.0.1:1"})
	go func() { errc <- runServe(ctx, []string{"--listen", "127.0.0.1:0"}, env, io.Discard, logs) }()
	logs.waitAddr(t, errc)
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(state, "queue.db")); err != nil {
		t.Errorf("queue not in BUILDER_STATE_DIR: %v", err)
	}
}

// TestServeShutdownReleasesJobs: a builder stopping cleanly gives the job it
// holds back to the queue at once instead of leaving it to its lease.
func TestServeShutdownReleasesJobs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	ctx, cancel := context.WithCancel(context.Background())
	logs := newLogWatcher()
	errc := make(chan error, 1)
	args := []string{"--listen", "127.0.0.1:0", "--config", writeServeConfig(t, dir, ""), "--state-dir", state,
		"--workers", "1", "--lease", "1h"}
	go func() {
		errc <- runServeWith(ctx, args, mapEnv(nil), io.Discard, logs, serveHooks{process: holdJobs(time.Hour)})
	}()
	base := "http://" + logs.waitAddr(t, errc)
	if s, b := post(t, base, githubRequest("push", "d1", readFixture(t, githubFixture+"push.json"), ghSecret)); s != http.StatusAccepted {
		t.Fatalf("push = %d %s", s, b)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return len(queueJobs(t, base, "?state=running")) == 1 },
		"job never claimed\n%s", logs)
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	q, err := sqlite.Open(context.Background(), filepath.Join(state, "queue.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	j, err := q.Get(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != queue.Queued || j.Attempts != 0 {
		t.Errorf("after shutdown: job %s with %d attempts, want queued with 0", j.State, j.Attempts)
	}
}

// TestServeExampleConfig: examples/builder.toml starts a builder that takes
// a webhook signed with its demo secret.
func TestServeExampleConfig(t *testing.T) {
	t.Parallel()
	base, _ := startServe(t, "--config", "../../examples/builder.toml", "--state-dir", filepath.Join(t.TempDir(), "state"))
	push := readFixture(t, githubFixture+"push.json")
	if s, b := post(t, base, githubRequest("push", "ex1", push, []byte("demo-github-webhook-secret"))); s != http.StatusAccepted {
		t.Fatalf("push signed with the example's secret = %d %s", s, b)
	}
	if s, _ := post(t, base, githubRequest("push", "ex2", push, []byte("demo-codeberg-webhook-secret"))); s != http.StatusUnauthorized {
		t.Fatalf("push signed with another remote's secret = %d, want 401", s)
	}
}
