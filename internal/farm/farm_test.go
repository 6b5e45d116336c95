package farm

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/farm/farmtest"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/queue/sqlite"
	"github.com/homelab-farm/farm/internal/server/servertest"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
)

// listen makes the test's listener on 127.0.0.1.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// loadConfig is the configuration in file ("": the defaults) with the
// state in stateDir, listening on 127.0.0.1:0, validated; it has no
// workers unless a test asks (these tests look at the queue itself).
// writeConfig writes src as dir/builder.toml and loads it with the state
// in dir/state (loadConfig).
func writeConfig(t testing.TB, dir, src string) *config.Config {
	t.Helper()
	file := filepath.Join(dir, "builder.toml")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return loadConfig(t, file, filepath.Join(dir, "state"))
}

func loadConfig(t testing.TB, file, stateDir string) *config.Config {
	t.Helper()
	cfg := config.Default()
	if file != "" {
		var err error
		if cfg, err = config.LoadFile(file); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Listen, cfg.StateDir = "127.0.0.1:0", stateDir
	cfg.Serve.Workers = 0
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// start opens the farm of cfg and runs it on a listener the test made; it
// returns the base URL, the farm and its log. The test's cleanup stops it
// and checks that Run returned nil within the drain.
func start(t testing.TB, cfg *config.Config, opts Options) (string, *Farm, *testenv.Buffer) {
	t.Helper()
	logs := &testenv.Buffer{}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(logs, nil))
	}
	f, err := Open(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- f.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(DrainTimeout + 5*time.Second):
			t.Errorf("Run did not return")
		}
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return "http://" + ln.Addr().String(), f, logs
}

// TestFarmEndToEnd: a signed webhook makes the builder evaluate the fleet,
// build every host for its system (aarch64 under qemu), push the closures,
// skip the darwin host, fail the broken one, report statuses and publish
// signed manifests; a second push changing one host rebuilds only it.
func TestFarmEndToEnd(t *testing.T) {
	hosts := map[string]fleettest.Host{
		"alpha":  {System: "x86_64-linux", Version: "1"},
		"beta":   {System: "x86_64-linux", Version: "1"},
		"pi":     {System: "aarch64-linux", Version: "1"},
		"mac":    {System: "aarch64-darwin", Version: "1", Kind: "darwin"},
		"broken": {System: "x86_64-linux", Version: "1", Broken: true},
	}
	f := farmtest.New(t, hosts)
	f.SetNixEnv(t)
	cfg := f.Config(t)
	cfg.PublicURL = "https://farm.example"
	base, _, _ := start(t, cfg, Options{})
	c1 := f.Repo.CommitAll(t, "first")

	status, body := servertest.Post(t, base, farmtest.PushHook(t, c1, "d-1"))
	if status != http.StatusAccepted {
		t.Fatalf("webhook: %d %s", status, body)
	}
	ev := farmtest.WaitEvaluation(t, base, farmtest.JobID(t, body), 3*time.Minute)
	got := farmtest.ByHost(ev)
	for host, want := range map[string]string{"alpha": "built", "beta": "built", "pi": "built", "mac": "skipped", "broken": "failed"} {
		if got[host].State != want {
			t.Errorf("%s is %s (%s), want %s", host, got[host].State, got[host].Reason, want)
		}
	}
	if got["mac"].Reason != "no builder for aarch64-darwin" {
		t.Errorf("mac: %q", got["mac"].Reason)
	}

	// The cache is served at /nix-cache/ and verifies.
	var info string
	resp, err := http.Get(base + "/nix-cache/" + cache.NarInfoKey(got["pi"].OutPath))
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		info = string(b)
	}
	if !strings.Contains(info, "StorePath: "+got["pi"].OutPath) {
		t.Errorf("narinfo of pi over /nix-cache/: %q", info)
	}

	// Statuses went to the fake GitHub: overall failure and per host.
	seen := map[string]string{}
	for _, c := range f.Statuses() {
		seen[c.Body["context"]] = c.Body["state"]
	}
	if seen["farm/eval"] != "failure" || seen["farm/host/alpha"] != "success" || seen["farm/host/broken"] != "failure" {
		t.Errorf("statuses = %v", seen)
	}
	checkStatusesOfCommit(t, base, cfg.PublicURL, f.Statuses, c1, ev)

	// A manifest for alpha, signed by the deploy key.
	var signed deploy.Signed
	if code := farmtest.GetJSON(t, base+"/api/hosts/alpha/manifest", &signed); code != http.StatusOK {
		t.Fatalf("manifest: %d", code)
	}
	m, err := deploy.Verify(signed, []cache.PublicKey{f.DeployKey.Public()}, "alpha", time.Now(), 0)
	if err != nil || m.StorePath != got["alpha"].OutPath || m.Commit != c1 {
		t.Fatalf("manifest of alpha: %+v, %v", m, err)
	}
	if code := farmtest.GetJSON(t, base+"/api/hosts/mac/manifest", nil); code != http.StatusNotFound {
		t.Errorf("manifest of the skipped mac: %d, want 404", code)
	}

	// The failed host's log and the metrics are served.
	resp, err = http.Get(fmt.Sprintf("%s/api/targets/%d/log", base, got["broken"].ID))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "option does not exist") {
		t.Errorf("log of broken: %q", b)
	}
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, metric := range []string{"farm_queue_depth", "farm_queue_oldest_job_age_seconds", "farm_build_duration_seconds_count", "farm_pushed_bytes_total", `farm_failures_total{kind="eval"} 1`} {
		if !strings.Contains(string(b), metric) {
			t.Errorf("metrics lack %s", metric)
		}
	}

	// Second push: only beta changes.
	hosts["beta"] = fleettest.Host{System: "x86_64-linux", Version: "2"}
	c2 := f.Repo.Commit(t, hosts, "beta v2")
	status, body = servertest.Post(t, base, farmtest.PushHook(t, c2, "d-2"))
	if status != http.StatusAccepted {
		t.Fatalf("second webhook: %d %s", status, body)
	}
	ev2 := farmtest.WaitEvaluation(t, base, farmtest.JobID(t, body), 3*time.Minute)
	got = farmtest.ByHost(ev2)
	for host, want := range map[string]string{"alpha": "cached", "pi": "cached", "beta": "built"} {
		if got[host].State != want {
			t.Errorf("second push: %s is %s, want %s", host, got[host].State, want)
		}
	}
	checkStatusesOfCommit(t, base, cfg.PublicURL, f.Statuses, c2, ev2)
}

// TestFarmRemotesTriggerReports: a commit is fetched from another remote
// when the one it came from lacks it; the deploy branch is fast-forwarded
// on the other remotes (sync_remotes); an admin triggers an evaluation by
// hand; an agent reports with its token.
func TestFarmRemotesTriggerReports(t *testing.T) {
	hosts := map[string]fleettest.Host{"alpha": {System: "x86_64-linux", Version: "r1"}}
	mirrorDir := filepath.Join(t.TempDir(), "codeberg.git")
	f := farmtest.NewWith(t, hosts, "sync_remotes = true", fmt.Sprintf(`
  [[repository.remote]]
  forge = "forgejo"
  url = "https://codeberg.org/alice/homelab"
  clone_url = %q
  secret_files = ["gh"]
`, mirrorDir))
	c1 := f.Repo.CommitAll(t, "first")
	farmtest.Git(t, "/", "clone", "--quiet", "--bare", f.Repo.Dir, mirrorDir)
	f.SetNixEnv(t)
	base, _, _ := start(t, f.Config(t), Options{})

	// A commit pushed to GitHub but arriving (first) through the Codeberg
	// mirror's webhook, which does not have it yet.
	hosts["alpha"] = fleettest.Host{System: "x86_64-linux", Version: "r2"}
	c2 := f.Repo.Commit(t, hosts, "alpha r2")
	var payload map[string]any
	if err := json.Unmarshal(servertest.ForgeFixture(t, "forgejo/push.json"), &payload); err != nil {
		t.Fatal(err)
	}
	payload["after"], payload["before"], payload["ref"] = c2, c1, "refs/heads/main"
	repo := payload["repository"].(map[string]any)
	repo["html_url"], repo["clone_url"], repo["full_name"] = "https://codeberg.org/alice/homelab", "https://codeberg.org/alice/homelab.git", "alice/homelab"
	body, _ := json.Marshal(payload)
	status, answer := servertest.Post(t, base, servertest.ForgejoHook("push", "fj-1", body, servertest.GHSecret))
	if status != http.StatusAccepted {
		t.Fatalf("forgejo webhook: %d %s", status, answer)
	}
	ev := farmtest.WaitEvaluation(t, base, farmtest.JobID(t, answer), 2*time.Minute)
	if got := farmtest.ByHost(ev)["alpha"]; ev.Commit != c2 || got.State != state.TargetBuilt {
		t.Fatalf("evaluation of %s: %+v", c2, ev)
	}
	// sync_remotes: the mirror's main now points at c2, fast-forwarded.
	if head := farmtest.Git(t, mirrorDir, "rev-parse", "refs/heads/main"); head != c2 {
		t.Errorf("mirror main = %s, want %s", head, c2)
	}

	// A manual trigger needs the admin token and resolves the branch head.
	hosts["alpha"] = fleettest.Host{System: "x86_64-linux", Version: "r3"}
	c3 := f.Repo.Commit(t, hosts, "alpha r3")
	if code, _ := servertest.Request(t, "POST", base+"/api/evaluations", "wrong", `{"repo":"homelab"}`); code != http.StatusUnauthorized {
		t.Errorf("trigger with a wrong token: %d, want 401", code)
	}
	if code, _ := servertest.Request(t, "POST", base+"/api/evaluations", "admin-secret", `{"repo":"nope"}`); code != http.StatusNotFound {
		t.Errorf("trigger of an unknown repository: %d, want 404", code)
	}
	code, answer := servertest.Request(t, "POST", base+"/api/evaluations", "admin-secret", `{"repo":"homelab"}`)
	if code != http.StatusAccepted {
		t.Fatalf("trigger: %d %s", code, answer)
	}
	var trig struct {
		JobID  int64  `json:"job"`
		Commit string `json:"commit"`
	}
	_ = json.Unmarshal(answer, &trig)
	if trig.Commit != c3 {
		t.Errorf("trigger resolved main to %s, want %s", trig.Commit, c3)
	}
	ev = farmtest.WaitEvaluation(t, base, trig.JobID, 2*time.Minute)
	alpha := farmtest.ByHost(ev)["alpha"]
	if alpha.State != state.TargetBuilt {
		t.Fatalf("triggered evaluation: %+v", ev)
	}

	// Agent reports.
	report := fmt.Sprintf(`{"current":%q,"result":"switched","seq":3}`, alpha.OutPath)
	for _, tc := range []struct {
		host, token, body string
		want              int
	}{
		{"alpha", "", report, http.StatusUnauthorized},
		{"alpha", "beta-token", report, http.StatusUnauthorized},
		{"beta", "alpha-token", report, http.StatusUnauthorized},
		{"../agents/alpha", "alpha-token", report, http.StatusNotFound},
		{"alpha", "alpha-token", `{"current": "/etc/passwd", "result": "switched"}`, http.StatusBadRequest},
		{"alpha", "alpha-token", `not json`, http.StatusBadRequest},
		{"alpha", "alpha-token", report, http.StatusNoContent},
	} {
		if code, b := servertest.Request(t, "POST", base+"/api/hosts/"+tc.host+"/report", tc.token, tc.body); code != tc.want {
			t.Errorf("report %s with %q: %d %s, want %d", tc.host, tc.token, code, b, tc.want)
		}
	}
	var h state.Host
	farmtest.GetJSON(t, base+"/api/hosts/alpha", &h)
	if h.CurrentPath != alpha.OutPath || h.LastResult != "switched" || h.DesiredPath != alpha.OutPath || h.LastSeen.IsZero() {
		t.Errorf("host alpha after the report: %+v", h)
	}
}

// TestServeStatusesOnClaim: a claimed evaluation is reported "pending" to
// every forge its commit came from, with the token from the token file.
// Statuses link dashboard pages only: at the claim no evaluation exists
// yet, so the pending status carries no link.
func TestServeStatusesOnClaim(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ghAPI, ghCalls := farmtest.FakeStatusAPI(t)
	fjAPI, fjCalls := farmtest.FakeStatusAPI(t)
	files := map[string]string{"gh": string(servertest.GHSecret), "cb": string(servertest.CBSecret), "gh-token": "ghtok\n", "cb-token": "cbtok\n"}
	for name, v := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	src := `public_url = "http://farm.test"
[[repository]]
name = "homelab"
  [[repository.remote]]
  forge = "github"
  url = "https://github.com/alice/homelab"
  api_url = "` + ghAPI.URL + `/"
  secret_files = ["gh"]
  token_file = "gh-token"
  [[repository.remote]]
  forge = "codeberg"
  url = "https://codeberg.org/alice/homelab"
  api_url = "` + fjAPI.URL + `/api/v1/"
  secret_files = ["cb"]
  token_file = "cb-token"
`
	cfg := writeConfig(t, dir, src)
	cfg.Serve.Workers = 1
	// The held jobs start their evaluation once the claim's "pending" went
	// out, then report through the farm's statuses: those find the
	// evaluation's page in the farm's state.
	ready := make(chan *Farm, 1)
	var evalID int64
	process := func(ctx context.Context, job queue.Job) ([]byte, error) {
		fm := <-ready
		ready <- fm
		calls := fjCalls
		if job.Remotes[0].URL == "https://github.com/alice/homelab" {
			calls = ghCalls
		}
		for deadline := time.Now().Add(15 * time.Second); len(calls()) == 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				return nil, errors.New("no claim status")
			}
		}
		ev, _, err := fm.state.StartEvaluation(ctx, state.Evaluation{JobID: job.ID, Repo: job.Repo, Branch: job.Branch, Commit: job.Commit})
		if err != nil {
			return nil, err
		}
		if job.Remotes[0].URL == "https://github.com/alice/homelab" {
			evalID = ev.ID
		}
		for _, st := range []forge.Status{{State: forge.StatePending, Description: "evaluating"}, {State: forge.StateSuccess, Description: "held"}} {
			if err := fm.pipeline.Statuses.Send(ctx, job, st, nil); err != nil {
				return nil, err
			}
		}
		return []byte(`{"held":true}`), nil
	}
	base, fm, logs := start(t, cfg, Options{Process: process})
	ready <- fm

	if s, b := servertest.Post(t, base, servertest.GitHubHook("push", "g1", servertest.ForgeFixture(t, "github/push.json"), servertest.GHSecret)); s != http.StatusAccepted {
		t.Fatalf("github push = %d %s", s, b)
	}
	if s, b := servertest.Post(t, base, servertest.ForgejoHook("push", "c1", servertest.Replace(servertest.ForgeFixture(t, "forgejo/push.json"), "refs/heads/main", "refs/heads/staging"), servertest.CBSecret)); s != http.StatusAccepted {
		t.Fatalf("codeberg push = %d %s", s, b)
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(ghCalls()) < 3 || len(fjCalls()) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("statuses: github %v, forgejo %v\n%s", ghCalls(), fjCalls(), logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	g := ghCalls()[0]
	if g.Path != "/repos/alice/homelab/statuses/"+servertest.TestCommit || g.Auth != "Bearer ghtok" ||
		g.Body["state"] != "pending" || g.Body["context"] != "farm/eval" || g.Body["target_url"] != "" {
		t.Errorf("github claim status = %+v, want pending farm/eval without a link (no evaluation yet)", g)
	}
	page := fmt.Sprintf("http://farm.test/evaluations/%d", evalID)
	for i, want := range []string{"pending", "success"} {
		g := ghCalls()[i+1]
		if g.Body["state"] != want || g.Body["context"] != "farm/eval" || g.Body["target_url"] != page {
			t.Errorf("github status %d = %+v, want %s farm/eval linking %s", i+1, g.Body, want, page)
		}
	}
	f := fjCalls()[0]
	if f.Path != "/api/v1/repos/alice/homelab/statuses/bffeb74224043ba2feb48d137756c8a9331c449a" || f.Auth != "token cbtok" ||
		f.Body["state"] != "pending" || f.Body["context"] != "farm/eval" {
		t.Errorf("forgejo status call = %+v", f)
	}
}

// TestServeStatusesOnlyToConfiguredRepo: a signed push whose payload names
// another repository (full_name) than the configured remote's gets its
// statuses on the configured repository only.
func TestServeStatusesOnlyToConfiguredRepo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	api, calls := farmtest.FakeStatusAPI(t)
	files := map[string]string{"gh": string(servertest.GHSecret), "gh-token": "ghtok\n"}
	for name, v := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	src := `[[repository]]
name = "homelab"
  [[repository.remote]]
  forge = "github"
  url = "https://github.com/alice/homelab"
  api_url = "` + api.URL + `/"
  secret_files = ["gh"]
  token_file = "gh-token"
`
	cfg := writeConfig(t, dir, src)
	cfg.Serve.Workers = 1
	base, _, logs := start(t, cfg, Options{Process: farmtest.HoldJobs(10 * time.Millisecond)})

	body := servertest.Replace(servertest.ForgeFixture(t, "github/push.json"), `"full_name": "alice/homelab"`, `"full_name": "mallory/victim"`)
	if s, b := servertest.Post(t, base, servertest.GitHubHook("push", "g1", body, servertest.GHSecret)); s != http.StatusAccepted {
		t.Fatalf("github push = %d %s", s, b)
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(calls()) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("statuses: %v\n%s", calls(), logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range calls() {
		if c.Path != "/repos/alice/homelab/statuses/"+servertest.TestCommit {
			t.Errorf("status sent to %s, want only /repos/alice/homelab/statuses/%s", c.Path, servertest.TestCommit)
		}
	}
}

// TestStatusClientsBoundToConfiguredRepo: the clients the pipeline's
// reports use set statuses on the configured repository whatever
// repository a job names.
func TestStatusClientsBoundToConfiguredRepo(t *testing.T) {
	dir := t.TempDir()
	api, calls := farmtest.FakeStatusAPI(t)
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Repositories: []config.Repository{{Name: "homelab", Remotes: []config.Remote{{
		Forge: forge.GitHub, URL: "https://github.com/alice/homelab", APIURL: api.URL + "/", TokenFile: token,
	}}}}}
	clients, err := statusClients(cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c := clients[forge.NormalizeURL("https://github.com/alice/homelab")]
	if c == nil {
		t.Fatal("no client for the configured remote")
	}
	if err := c.SetStatus(context.Background(), "mallory/victim", servertest.TestCommit, forge.Status{State: forge.StatePending, Context: "farm/eval"}); err != nil {
		t.Fatal(err)
	}
	got := calls()
	if len(got) != 1 || got[0].Path != "/repos/alice/homelab/statuses/"+servertest.TestCommit {
		t.Errorf("status calls %+v, want one to /repos/alice/homelab/statuses/%s", got, servertest.TestCommit)
	}
}

func TestMirrorOfStaysUnderRoot(t *testing.T) {
	root := t.TempDir()
	if got := mirrorOf(root, "homelab").Dir; got != filepath.Join(root, "homelab.git") {
		t.Errorf("mirrorOf(homelab) = %q", got)
	}
	for _, repo := range []string{"", "../x", "a/b", "..", "a\x00"} {
		m := mirrorOf(root, repo)
		if m.Dir != "" {
			t.Errorf("mirrorOf(%q) = %q, want no directory", repo, m.Dir)
		}
		if _, err := m.Fetch(context.Background(), nil, strings.Repeat("a", 40)); err == nil {
			t.Errorf("mirror of %q fetched", repo)
		}
	}
}

// TestLoadOrCreateKeyModes: a key the builder makes is 0600 even when a
// 0644 temporary is left over from a crash, and a key file (configured or
// made earlier) that its group or others can read stops the start with an
// error naming the file and never its contents.
func TestLoadOrCreateKeyModes(t *testing.T) {
	log := slog.New(slog.DiscardHandler)

	t.Run("leftover temporary", func(t *testing.T) {
		dir := t.TempDir()
		fallback := filepath.Join(dir, "cache-signing.key")
		for _, leftover := range []string{fallback + ".tmp", filepath.Join(dir, ".cache-signing.key.tmp")} {
			if err := os.WriteFile(leftover, []byte("half a key"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(leftover, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		k, err := loadOrCreateKey("", fallback, "farm-cache-1", log)
		if err != nil {
			t.Fatalf("loadOrCreateKey: %v", err)
		}
		fi, err := os.Stat(fallback)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("new key file has mode %04o, want 0600", fi.Mode().Perm())
		}
		again, err := loadOrCreateKey("", fallback, "farm-cache-1", log)
		if err != nil || again.String() != k.String() {
			t.Errorf("second start: key %v, err %v; want the key made first", again.Public(), err)
		}
	})

	for _, tc := range []struct {
		name       string
		mode       os.FileMode
		configured bool
		ok         bool
	}{
		{"configured 0600", 0o600, true, true},
		{"configured 0400", 0o400, true, true},
		{"configured 0640", 0o640, true, false},
		{"configured 0604", 0o604, true, false},
		{"configured 0644", 0o644, true, false},
		{"state dir 0600", 0o600, false, true},
		{"state dir 0644", 0o644, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			k, err := cache.GenerateKey("farm-cache-1")
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, "cache-signing.key")
			if err := os.WriteFile(file, []byte(k.String()+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(file, tc.mode); err != nil {
				t.Fatal(err)
			}
			configured, fallback := file, filepath.Join(dir, "other.key")
			if !tc.configured {
				configured, fallback = "", file
			}
			got, err := loadOrCreateKey(configured, fallback, "farm-cache-1", log)
			if tc.ok {
				if err != nil || got.String() != k.String() {
					t.Fatalf("loadOrCreateKey: %v", err)
				}
				return
			}
			if !errors.Is(err, cache.ErrKeyExposed) {
				t.Fatalf("loadOrCreateKey = %v, want ErrKeyExposed", err)
			}
			secret := strings.SplitN(k.String(), ":", 2)[1]
			if !strings.Contains(err.Error(), file) || strings.Contains(err.Error(), secret) {
				t.Errorf("error %q: want it to name %s and not hold the key", err, file)
			}
			if _, err := os.Stat(fallback); tc.configured && err == nil {
				t.Errorf("a key was made in the state directory although the configured one was refused")
			}
		})
	}
}

// TestBuilderRenewsManifest drives the builder's clock: the manifest
// GET /api/hosts/{host}/manifest serves is the stored one while fresh and a
// renewal (same seq, store path and commit, a later expiry) once less than
// half of --manifest-ttl is left.
func TestBuilderRenewsManifest(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.Serve.ManifestTTL = 10 * time.Hour
	f, err := Open(ctx, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	clock := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	f.pipeline.Now = func() time.Time { return clock }
	key, err := cache.LoadSecretKeyFile(filepath.Join(cfg.StateDir, "deploy-signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	const path = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-alpha"
	first, err := deploy.Sign(deploy.Manifest{Host: "alpha", StorePath: path, Commit: "c1", Seq: 3, IssuedAt: clock, Expires: clock.Add(10 * time.Hour)}, key)
	if err != nil {
		t.Fatal(err)
	}
	firstBody, _ := json.Marshal(first)
	if err := f.state.SetDesired(ctx, "alpha", path, "c1", 3, firstBody); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.Handler())
	defer srv.Close()
	get := func() []byte {
		t.Helper()
		resp, err := http.Get(srv.URL + "/api/hosts/alpha/manifest")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("manifest: %d %s", resp.StatusCode, b)
		}
		return b
	}

	clock = clock.Add(4 * time.Hour) // 6 h of 10 left
	if got := get(); string(got) != string(firstBody) {
		t.Fatalf("a fresh manifest was re-signed: %s", got)
	}
	clock = clock.Add(2 * time.Hour) // 4 h left: renewed
	var s2 deploy.Signed
	if err := json.Unmarshal(get(), &s2); err != nil {
		t.Fatal(err)
	}
	m, err := deploy.Verify(s2, []cache.PublicKey{key.Public()}, "alpha", clock, 0)
	if err != nil || m.Seq != 3 || m.StorePath != path || m.Commit != "c1" || !m.Expires.Equal(clock.Add(10*time.Hour)) {
		t.Fatalf("renewed manifest = %+v, %v; want seq 3, same path and commit, expiring %s", m, err, clock.Add(10*time.Hour))
	}
	clock = clock.Add(9 * time.Hour) // past the first expiry: the renewal is what the agent takes
	if _, err := deploy.Verify(first, []cache.PublicKey{key.Public()}, "alpha", clock, 0); err == nil {
		t.Errorf("the first manifest still verifies after its expiry")
	}
	var s3 deploy.Signed
	_ = json.Unmarshal(get(), &s3)
	if _, err := deploy.Verify(s3, []cache.PublicKey{key.Public()}, "alpha", clock, 0); err != nil {
		t.Errorf("served manifest after the first expiry: %v", err)
	}
}

func writeToken(t testing.TB, dir, host, token string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, host), []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServeReloadsAgentTokensOnHangup: serve takes a changed agent token
// after SIGHUP, and refuses the old one.
func TestServeReloadsAgentTokensOnHangup(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "agents")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	writeToken(t, tokens, "alpha", "old-token\n")
	cfg := loadConfig(t, servertest.WriteConfig(t, dir, ""), filepath.Join(dir, "state"))
	cfg.Serve.AgentTokensDir = tokens
	base, _, _ := start(t, cfg, Options{})
	seq := func(token string) int {
		t.Helper()
		s, _ := servertest.Request(t, http.MethodGet, base+"/api/hosts/alpha/seq", token, "")
		return s
	}
	if s := seq("old-token"); s != http.StatusOK {
		t.Fatalf("old token before the change = %d", s)
	}
	writeToken(t, tokens, "alpha", "new-token\n")
	if s := seq("new-token"); s != http.StatusUnauthorized {
		t.Fatalf("new token before SIGHUP = %d, want 401 (tokens are not read per request)", s)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return seq("new-token") == http.StatusOK }, "new token refused after SIGHUP")
	if s := seq("old-token"); s != http.StatusUnauthorized {
		t.Errorf("old token after SIGHUP = %d, want 401", s)
	}
}

// TestServeShutdownReleasesJobs: a builder stopping cleanly gives the job it
// holds back to the queue at once instead of leaving it to its lease.
func TestServeShutdownReleasesJobs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	cfg := loadConfig(t, servertest.WriteConfig(t, dir, ""), state)
	cfg.Serve.Workers, cfg.Queue.Lease.Duration = 1, time.Hour
	logs := &testenv.Buffer{}
	f, err := Open(context.Background(), cfg, Options{Log: slog.New(slog.NewTextHandler(logs, nil)), Process: farmtest.HoldJobs(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ln := listen(t)
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- f.Run(ctx, ln) }()
	if s, b := servertest.Post(t, base, servertest.GitHubHook("push", "d1", servertest.ForgeFixture(t, "github/push.json"), servertest.GHSecret)); s != http.StatusAccepted {
		t.Fatalf("push = %d %s", s, b)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return len(servertest.Jobs(t, base, "?state=running")) == 1 },
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

// TestServePostgresQueue runs the builder on the shared PostgreSQL queue
// (--queue), in a schema of its own that the test drops afterwards.
func TestServePostgresQueue(t *testing.T) {
	t.Parallel()
	schema, dsn := testenv.PostgresSchema(t, "serve_test")
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()

	dir := t.TempDir()
	cfg := loadConfig(t, servertest.WriteConfig(t, dir, ""), filepath.Join(dir, "state"))
	cfg.Queue.URL = dsn
	base, _, _ := start(t, cfg, Options{})
	push := servertest.ForgeFixture(t, "github/push.json")
	for _, d := range []string{"a", "b", "a"} {
		if s, body := servertest.Post(t, base, servertest.GitHubHook("push", d, push, servertest.GHSecret)); s != http.StatusAccepted {
			t.Fatalf("push = %d %s", s, body)
		}
	}
	cb := servertest.Replace(servertest.ForgeFixture(t, "forgejo/push.json"), "bffeb74224043ba2feb48d137756c8a9331c449a", servertest.TestCommit)
	if s, body := servertest.Post(t, base, servertest.ForgejoHook("push", "c", cb, servertest.CBSecret)); s != http.StatusAccepted {
		t.Fatalf("codeberg push = %d %s", s, body)
	}
	evs := servertest.Jobs(t, base, "")
	if len(evs) != 1 || len(evs[0].Remotes) != 2 {
		t.Fatalf("evaluations = %+v, want one with two remotes", evs)
	}
	var n int
	if err := admin.QueryRow(`SELECT count(*) FROM ` + schema + `.deliveries`).Scan(&n); err != nil || n != 3 {
		t.Errorf("deliveries in PostgreSQL = %d, %v; want 3", n, err)
	}
	// --queue alone keeps its meaning: the state stays in SQLite.
	if _, err := os.Stat(filepath.Join(dir, "state", "state.db")); err != nil {
		t.Errorf("with --queue only, the state is not in state.db: %v", err)
	}
}

// TestServeDatabaseTwoInstances: with --database, two builders on one
// PostgreSQL schema keep the queue and the state there (no SQLite files)
// and are one farm: the event one records streams from the other, and a
// client resuming on the first with Last-Event-ID gets nothing twice.
func TestServeDatabaseTwoInstances(t *testing.T) {
	t.Parallel()
	schema, dsn := testenv.PostgresSchema(t, "serve_test")
	dir := t.TempDir()
	cfgFile := servertest.WriteConfig(t, dir, "")
	var bases [2]string
	for i := range bases {
		cfg := loadConfig(t, cfgFile, filepath.Join(dir, fmt.Sprint("state", i)))
		cfg.Database = dsn
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		bases[i], _, _ = start(t, cfg, Options{})
	}
	push := servertest.ForgeFixture(t, "github/push.json")
	if s, body := servertest.Post(t, bases[0], servertest.GitHubHook("push", "a", push, servertest.GHSecret)); s != http.StatusAccepted {
		t.Fatalf("push = %d %s", s, body)
	}
	var evs []state.Event
	for deadline := time.Now().Add(15 * time.Second); len(evs) == 0 && time.Now().Before(deadline); {
		evs = farmtest.ReadEvents(t, bases[1], 0, 1)
	}
	if len(evs) != 1 || evs[0].Type != string(farmapi.EvalQueued) {
		t.Fatalf("events on the second builder = %+v; want the first's %s", evs, farmapi.EvalQueued)
	}
	if again := farmtest.ReadEvents(t, bases[0], evs[0].ID, 1); len(again) != 0 {
		t.Errorf("resuming on the first builder after event %d gave %+v; want nothing", evs[0].ID, again)
	}
	if jobs := servertest.Jobs(t, bases[1], ""); len(jobs) != 1 {
		t.Errorf("evaluations on the second builder = %+v; want the first's job", jobs)
	}
	for i := range bases {
		for _, f := range []string{"state.db", "queue.db"} {
			if _, err := os.Stat(filepath.Join(dir, fmt.Sprint("state", i), f)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("builder %d made %s (%v); want everything in PostgreSQL", i, f, err)
			}
		}
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var n int
	if err := admin.QueryRow(`SELECT count(*) FROM ` + schema + `.events`).Scan(&n); err != nil || n != 1 {
		t.Errorf("events in PostgreSQL = %d, %v; want 1", n, err)
	}
}

// TestDefaultsAgree: the serve flags' defaults are the ones the pipeline
// falls back to.
func TestDefaultsAgree(t *testing.T) {
	if got, want := config.DefaultServe().ManifestTTL, pipeline.DefaultManifestTTL; got != want {
		t.Errorf("--manifest-ttl default %v, pipeline.DefaultManifestTTL %v", got, want)
	}
	if got, want := config.DefaultServe().FlakeDir, "nix"; got != want {
		t.Errorf("--flake-dir default %q, want %q (pipeline's default)", got, want)
	}
}
