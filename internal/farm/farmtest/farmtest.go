package farmtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/server/servertest"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
)

// Setup is a fleet repository and a builder configuration that
// fetches from it, with statuses going to a fake GitHub API.
type Setup struct {
	Dir, ConfigFile, StateDir string
	Repo                      *fleettest.Repo
	Statuses                  func() []StatusCall
	DeployKey, CacheKey       cache.SecretKey
	NixEnv                    []string
}

func New(t testing.TB, hosts map[string]fleettest.Host) *Setup {
	return NewWith(t, hosts, "", "")
}

// NewWith adds TOML to the repository table (repoExtra) and
// after its first remote (remotesExtra).
func NewWith(t testing.TB, hosts map[string]fleettest.Host, repoExtra, remotesExtra string) *Setup {
	t.Helper()
	env := testenv.Nix(t)
	f := &Setup{Dir: t.TempDir(), Repo: fleettest.New(t, hosts), NixEnv: env}
	f.StateDir = filepath.Join(f.Dir, "state")
	api, calls := FakeStatusAPI(t)
	f.Statuses = calls
	f.CacheKey, _ = cache.GenerateKey("farm-e2e-cache-1")
	f.DeployKey, _ = cache.GenerateKey("farm-e2e-deploy-1")
	files := map[string]string{
		"gh": string(servertest.GHSecret), "gh-token": "ghtok\n", "admin-token": "admin-secret\n",
		"cache.key": f.CacheKey.String(), "deploy.key": f.DeployKey.String(),
		"agents/alpha": "alpha-token\n",
	}
	for name, v := range files {
		p := filepath.Join(f.Dir, name)
		_ = os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f.ConfigFile = filepath.Join(f.Dir, "builder.toml")
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
`, repoExtra, f.Repo.Dir, api.URL+"/", remotesExtra)
	if err := os.WriteFile(f.ConfigFile, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *Setup) Args(extra ...string) []string {
	return append([]string{"--config", f.ConfigFile, "--state-dir", f.StateDir, "--workers", "1",
		"--admin-token-file", filepath.Join(f.Dir, "admin-token"),
		"--agent-tokens-dir", filepath.Join(f.Dir, "agents")}, extra...)
}

// Config is the configuration Args gives `builder serve`, for a farm run
// in the test's process: the file's, with the state directory, one worker,
// the admin token and the agents' tokens, listening on 127.0.0.1:0.
func (f *Setup) Config(t testing.TB) *config.Config {
	t.Helper()
	cfg, err := config.LoadFile(f.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.StateDir = "127.0.0.1:0", f.StateDir
	cfg.Serve.Workers = 1
	cfg.Serve.AdminTokenFile = filepath.Join(f.Dir, "admin-token")
	cfg.Serve.AgentTokensDir = filepath.Join(f.Dir, "agents")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// SetNixEnv gives an in-process builder the tests' Nix configuration.
func (f *Setup) SetNixEnv(t testing.TB) {
	for _, kv := range f.NixEnv {
		if k, v, ok := strings.Cut(kv, "="); ok && (k == "NIX_CONFIG" || k == "XDG_CACHE_HOME") {
			t.Setenv(k, v)
		}
	}
}

// PushHook is a signed GitHub push of commit to main.
func PushHook(t testing.TB, commit, delivery string) servertest.Hook {
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

func GetJSON(t testing.TB, url string, v any) int {
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

// EvaluationView is GET /api/evaluations/{id}: an evaluation with its
// targets.
type EvaluationView struct {
	state.Evaluation
	Targets []state.Target `json:"targets"`
}

// JobView is GET /api/jobs/{id}: a job with its evaluation's id.
type JobView struct {
	queue.Job
	Eval int64 `json:"eval,omitempty"`
}

// WaitEvaluation waits until job's evaluation is finished and returns it.
func WaitEvaluation(t testing.TB, base string, job int64, timeout time.Duration) EvaluationView {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var ev EvaluationView
		if GetJSON(t, fmt.Sprintf("%s/api/evaluations/%d", base, EvalOf(t, base, job)), &ev) == http.StatusOK &&
			(ev.State == state.EvalDone || ev.State == state.EvalFailed) {
			return ev
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("evaluation of job %d did not finish within %s", job, timeout)
	return EvaluationView{}
}

// EvalOf is the id of job's evaluation, 0 before a worker started it.
func EvalOf(t testing.TB, base string, job int64) int64 {
	t.Helper()
	var j JobView
	if GetJSON(t, fmt.Sprintf("%s/api/jobs/%d", base, job), &j) != http.StatusOK {
		return 0
	}
	if j.ID != job {
		t.Fatalf("GET /api/jobs/%d answered job %d", job, j.ID)
	}
	return j.Eval
}

func JobID(t testing.TB, body []byte) int64 {
	t.Helper()
	var r farmapi.EnqueueResponse
	if err := json.Unmarshal(body, &r); err != nil || r.Job == 0 {
		t.Fatalf("webhook answer %s: no job id", body)
	}
	return r.Job
}

func ByHost(ev EvaluationView) map[string]state.Target {
	m := map[string]state.Target{}
	for _, tg := range ev.Targets {
		m[tg.Host] = tg
	}
	return m
}

// ReadEvents reads events from the SSE stream, resuming after lastID, until
// it has n of them or none came for a second.
func ReadEvents(t testing.TB, base string, lastID int64, n int) []state.Event {
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

type StatusCall struct {
	Path, Auth string
	Body       map[string]string
}

// FakeStatusAPI records commit status calls; the first answer is a 502.
func FakeStatusAPI(t testing.TB) (*httptest.Server, func() []StatusCall) {
	t.Helper()
	var mu sync.Mutex
	var calls []StatusCall
	first := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if first {
			first = false
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var body map[string]string
		_ = json.Unmarshal(b, &body)
		calls = append(calls, StatusCall{r.URL.Path, r.Header.Get("Authorization"), body})
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{}`)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []StatusCall {
		mu.Lock()
		defer mu.Unlock()
		return append([]StatusCall(nil), calls...)
	}
}

// HoldJobs is a processor that holds each job for d, then completes it
// without evaluating: for tests of claims, leases and crash recovery.
func HoldJobs(d time.Duration) func(ctx context.Context, job queue.Job) ([]byte, error) {
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

// Git runs git with args in dir and returns its trimmed output.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}
