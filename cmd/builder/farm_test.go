package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/server/servertest"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
)

// farmSetup is a fleet repository and a builder configuration that
// fetches from it, with statuses going to a fake GitHub API.
type farmSetup struct {
	dir, config, stateDir string
	repo                  *fleettest.Repo
	statuses              func() []statusCall
	deployKey, cacheKey   cache.SecretKey
	nixEnv                []string
}

func newFarmSetup(t testing.TB, hosts map[string]fleettest.Host) *farmSetup {
	return newFarmSetupWith(t, hosts, "", "")
}

// newFarmSetupWith adds TOML to the repository table (repoExtra) and
// after its first remote (remotesExtra).
func newFarmSetupWith(t testing.TB, hosts map[string]fleettest.Host, repoExtra, remotesExtra string) *farmSetup {
	t.Helper()
	env := testenv.Nix(t)
	f := &farmSetup{dir: t.TempDir(), repo: fleettest.New(t, hosts), nixEnv: env}
	f.stateDir = filepath.Join(f.dir, "state")
	api, calls := fakeStatusAPI(t)
	f.statuses = calls
	f.cacheKey, _ = cache.GenerateKey("farm-e2e-cache-1")
	f.deployKey, _ = cache.GenerateKey("farm-e2e-deploy-1")
	files := map[string]string{
		"gh": string(servertest.GHSecret), "gh-token": "ghtok\n", "admin-token": "admin-secret\n",
		"cache.key": f.cacheKey.String(), "deploy.key": f.deployKey.String(),
		"agents/alpha": "alpha-token\n",
	}
	for name, v := range files {
		p := filepath.Join(f.dir, name)
		_ = os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f.config = filepath.Join(f.dir, "builder.toml")
	src := fmt.Sprintf(`signing_key_file = "cache.key"
deploy_key_file = "deploy.key"
[[repository]]
name = "homelab"
deploy_branch = "main"
%s
  [[repository.remote]]
  forge = "github"
  url = "https://github.com/alice/homelab"
  clone_url = %q
  api_url = %q
  secret_files = ["gh"]
  token_file = "gh-token"
%s
`, repoExtra, f.repo.Dir, api.URL+"/", remotesExtra)
	if err := os.WriteFile(f.config, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *farmSetup) args(extra ...string) []string {
	return append([]string{"--config", f.config, "--state-dir", f.stateDir, "--workers", "1",
		"--admin-token-file", filepath.Join(f.dir, "admin-token"),
		"--agent-tokens-dir", filepath.Join(f.dir, "agents")}, extra...)
}

// setNixEnv gives the in-process builder the tests' Nix configuration.
func (f *farmSetup) setNixEnv(t testing.TB) {
	for _, kv := range f.nixEnv {
		if k, v, ok := strings.Cut(kv, "="); ok && (k == "NIX_CONFIG" || k == "XDG_CACHE_HOME") {
			t.Setenv(k, v)
		}
	}
}

// pushHook is a signed GitHub push of commit to main.
func pushHook(t testing.TB, commit, delivery string) servertest.Hook {
	t.Helper()
	var payload map[string]any
	if err := json.Unmarshal(servertest.ForgeFixture(t, "github/push.json"), &payload); err != nil {
		t.Fatal(err)
	}
	payload["after"] = commit
	payload["before"] = strings.Repeat("0", 40)
	payload["ref"] = "refs/heads/main"
	body, _ := json.Marshal(payload)
	return servertest.GitHubHook("push", delivery, body, servertest.GHSecret)
}

func getJSON(t testing.TB, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("decode %s: %v", url, err)
		}
	}
	return resp.StatusCode
}

// evaluationView is GET /api/evaluations/{id}: an evaluation with its
// targets.
type evaluationView struct {
	state.Evaluation
	Targets []state.Target `json:"targets"`
}

// jobView is GET /api/jobs/{id}: a job with its evaluation's id.
type jobView struct {
	queue.Job
	Eval int64 `json:"eval,omitempty"`
}

// waitEvaluation waits until job's evaluation is finished and returns it.
func waitEvaluation(t testing.TB, base string, job int64, timeout time.Duration) evaluationView {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var ev evaluationView
		if getJSON(t, fmt.Sprintf("%s/api/evaluations/%d", base, evalOf(t, base, job)), &ev) == http.StatusOK &&
			(ev.State == state.EvalDone || ev.State == state.EvalFailed) {
			return ev
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("evaluation of job %d did not finish within %s", job, timeout)
	return evaluationView{}
}

// evalOf is the id of job's evaluation, 0 before a worker started it.
func evalOf(t testing.TB, base string, job int64) int64 {
	t.Helper()
	var j jobView
	if getJSON(t, fmt.Sprintf("%s/api/jobs/%d", base, job), &j) != http.StatusOK {
		return 0
	}
	if j.ID != job {
		t.Fatalf("GET /api/jobs/%d answered job %d", job, j.ID)
	}
	return j.Eval
}

func jobID(t testing.TB, body []byte) int64 {
	t.Helper()
	var r farmapi.EnqueueResponse
	if err := json.Unmarshal(body, &r); err != nil || r.Job == 0 {
		t.Fatalf("webhook answer %s: no job id", body)
	}
	return r.Job
}

func byHost(ev evaluationView) map[string]state.Target {
	m := map[string]state.Target{}
	for _, tg := range ev.Targets {
		m[tg.Host] = tg
	}
	return m
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
	f := newFarmSetup(t, hosts)
	f.setNixEnv(t)
	base, _ := startServe(t, f.args()...)
	c1 := f.repo.CommitAll(t, "first")

	status, body := servertest.Post(t, base, pushHook(t, c1, "d-1"))
	if status != http.StatusAccepted {
		t.Fatalf("webhook: %d %s", status, body)
	}
	ev := waitEvaluation(t, base, jobID(t, body), 3*time.Minute)
	got := byHost(ev)
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
	for _, c := range f.statuses() {
		seen[c.body["context"]] = c.body["state"]
	}
	if seen["farm/eval"] != "failure" || seen["farm/host/alpha"] != "success" || seen["farm/host/broken"] != "failure" {
		t.Errorf("statuses = %v", seen)
	}

	// A manifest for alpha, signed by the deploy key.
	var signed deploy.Signed
	if code := getJSON(t, base+"/api/hosts/alpha/manifest", &signed); code != http.StatusOK {
		t.Fatalf("manifest: %d", code)
	}
	m, err := deploy.Verify(signed, []cache.PublicKey{f.deployKey.Public()}, "alpha", time.Now(), 0)
	if err != nil || m.StorePath != got["alpha"].OutPath || m.Commit != c1 {
		t.Fatalf("manifest of alpha: %+v, %v", m, err)
	}
	if code := getJSON(t, base+"/api/hosts/mac/manifest", nil); code != http.StatusNotFound {
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
	c2 := f.repo.Commit(t, hosts, "beta v2")
	status, body = servertest.Post(t, base, pushHook(t, c2, "d-2"))
	if status != http.StatusAccepted {
		t.Fatalf("second webhook: %d %s", status, body)
	}
	got = byHost(waitEvaluation(t, base, jobID(t, body), 3*time.Minute))
	for host, want := range map[string]string{"alpha": "cached", "pi": "cached", "beta": "built"} {
		if got[host].State != want {
			t.Errorf("second push: %s is %s, want %s", host, got[host].State, want)
		}
	}
}

// readEvents reads events from the SSE stream, resuming after lastID, until
// it has n of them or none came for a second.
func readEvents(t *testing.T, base string, lastID int64, n int) []state.Event {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/events", nil)
	if lastID > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(lastID, 10))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	idle := time.AfterFunc(time.Second, cancel)
	var out []state.Event
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && len(out) < n {
		idle.Reset(time.Second)
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var ev state.Event
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatalf("event %q: %v", data, err)
			}
			out = append(out, ev)
		}
	}
	return out
}

// TestFarmKilledMidBuild kills the builder (SIGKILL) while a host builds;
// after a restart the evaluation completes and no host is pushed twice. The
// event stream resumes from Last-Event-ID with nothing lost or repeated.
func TestFarmKilledMidBuild(t *testing.T) {
	hosts := map[string]fleettest.Host{
		"alpha": {System: "x86_64-linux", Version: "k1"},
		"slow":  {System: "x86_64-linux", Version: "k1", Sleep: 3},
	}
	f := newFarmSetup(t, hosts)
	c1 := f.repo.CommitAll(t, "first")
	env := append(os.Environ(), f.nixEnv...)
	first := startBuilderProcessEnv(t, env, f.args("--lease", "2s")...)
	status, body := servertest.Post(t, first.base, pushHook(t, c1, "k-1"))
	if status != http.StatusAccepted {
		t.Fatalf("webhook: %d %s", status, body)
	}
	job := jobID(t, body)
	// Wait until the slow host builds, then kill the builder.
	deadline := time.Now().Add(time.Minute)
	for {
		var ev evaluationView
		getJSON(t, fmt.Sprintf("%s/api/evaluations/%d", first.base, evalOf(t, first.base, job)), &ev)
		if byHost(ev)["slow"].State == state.TargetBuilding {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow host never started building")
		}
		time.Sleep(50 * time.Millisecond)
	}
	seenBefore := readEvents(t, first.base, 0, 3)
	_ = first.cmd.Process.Signal(syscall.SIGKILL)
	<-first.exit

	second := startBuilderProcessEnv(t, env, f.args("--lease", "2s")...)
	restarted := time.Now()
	ev := waitEvaluation(t, second.base, job, 2*time.Minute)
	t.Logf("evaluation completed %s after the restart", time.Since(restarted).Round(time.Millisecond))
	got := byHost(ev)
	if got["slow"].State != state.TargetBuilt || (got["alpha"].State != state.TargetBuilt && got["alpha"].State != state.TargetCached) {
		t.Fatalf("after restart: %+v", got)
	}
	// Every event once, in order; each host built (pushed) exactly once.
	all := readEvents(t, second.base, 0, 1000)
	lastSeen := seenBefore[len(seenBefore)-1].ID
	resumed := readEvents(t, second.base, lastSeen, len(all))
	if len(resumed) != len(all)-int(lastSeen) || resumed[0].ID != lastSeen+1 {
		t.Fatalf("resumed after %d: got %d events from %d, want %d from %d", lastSeen, len(resumed), resumed[0].ID, len(all)-int(lastSeen), lastSeen+1)
	}
	built := map[string]int{}
	for i, e := range all {
		if e.ID != int64(i+1) {
			t.Fatalf("event %d has id %d", i+1, e.ID)
		}
		if e.Type == "target.built" {
			var d struct{ Host string }
			_ = json.Unmarshal(e.Data, &d)
			built[d.Host]++
		}
	}
	if built["slow"] != 1 || built["alpha"] != 1 {
		t.Errorf("built events per host = %v, want one each", built)
	}
}

// startBuilderProcessEnv is startBuilderProcess with the environment given
// (the tests' Nix configuration).
func startBuilderProcessEnv(t testing.TB, env []string, args ...string) *builderProcess {
	t.Helper()
	bin, err := buildBuilder()
	if err != nil {
		t.Fatal(err)
	}
	return startProcess(t, bin, env, args...)
}

// startProcess runs bin serve with args; the environment is env without the
// builder's own variables.
func startProcess(t testing.TB, bin string, env []string, args ...string) *builderProcess {
	t.Helper()
	p := &builderProcess{logs: newLogWatcher(), done: make(chan error, 1), exit: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	p.cmd.Env = append(env, "BUILDER_CONFIG=", "BUILDER_STATE_DIR=", "BUILDER_LISTEN=", "BUILDER_QUEUE=", "BUILDER_DATABASE=")
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.done <- p.cmd.Wait()
		close(p.exit)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exit
	})
	p.base = "http://" + p.logs.waitAddr(t, p.done)
	return p
}

func gitOut(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestFarmRemotesTriggerReports: a commit is fetched from another remote
// when the one it came from lacks it; the deploy branch is fast-forwarded
// on the other remotes (sync_remotes); an admin triggers an evaluation by
// hand; an agent reports with its token.
func TestFarmRemotesTriggerReports(t *testing.T) {
	hosts := map[string]fleettest.Host{"alpha": {System: "x86_64-linux", Version: "r1"}}
	mirrorDir := filepath.Join(t.TempDir(), "codeberg.git")
	f := newFarmSetupWith(t, hosts, "sync_remotes = true", fmt.Sprintf(`
  [[repository.remote]]
  forge = "forgejo"
  url = "https://codeberg.org/alice/homelab"
  clone_url = %q
  secret_files = ["gh"]
`, mirrorDir))
	c1 := f.repo.CommitAll(t, "first")
	gitOut(t, "/", "clone", "--quiet", "--bare", f.repo.Dir, mirrorDir)
	f.setNixEnv(t)
	base, _ := startServe(t, f.args()...)

	// A commit pushed to GitHub but arriving (first) through the Codeberg
	// mirror's webhook, which does not have it yet.
	hosts["alpha"] = fleettest.Host{System: "x86_64-linux", Version: "r2"}
	c2 := f.repo.Commit(t, hosts, "alpha r2")
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
	ev := waitEvaluation(t, base, jobID(t, answer), 2*time.Minute)
	if got := byHost(ev)["alpha"]; ev.Commit != c2 || got.State != state.TargetBuilt {
		t.Fatalf("evaluation of %s: %+v", c2, ev)
	}
	// sync_remotes: the mirror's main now points at c2, fast-forwarded.
	if head := gitOut(t, mirrorDir, "rev-parse", "refs/heads/main"); head != c2 {
		t.Errorf("mirror main = %s, want %s", head, c2)
	}

	// A manual trigger needs the admin token and resolves the branch head.
	hosts["alpha"] = fleettest.Host{System: "x86_64-linux", Version: "r3"}
	c3 := f.repo.Commit(t, hosts, "alpha r3")
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
	ev = waitEvaluation(t, base, trig.JobID, 2*time.Minute)
	alpha := byHost(ev)["alpha"]
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
	getJSON(t, base+"/api/hosts/alpha", &h)
	if h.CurrentPath != alpha.OutPath || h.LastResult != "switched" || h.DesiredPath != alpha.OutPath || h.LastSeen.IsZero() {
		t.Errorf("host alpha after the report: %+v", h)
	}
}
