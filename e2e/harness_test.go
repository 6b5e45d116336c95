package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/forge/github"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
	"github.com/homelab-farm/farm/internal/testenv/miniotest"
)

// binDir holds builder, notifier, agent and holdbuilder, built once by
// TestMain.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "farm-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binDir = dir
	cmd := exec.Command("go", "build", "-o", dir+"/", "github.com/homelab-farm/farm/cmd/builder",
		"github.com/homelab-farm/farm/cmd/notifier", "github.com/homelab-farm/farm/cmd/agent",
		"github.com/homelab-farm/farm/e2e/internal/holdbuilder")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build the farm's programs: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	miniotest.Main(runThenRemove{m, dir})
}

// runThenRemove runs the tests, then removes the built programs.
type runThenRemove struct {
	m   *testing.M
	dir string
}

func (r runThenRemove) Run() int {
	defer os.RemoveAll(r.dir)
	return r.m.Run()
}

// ghSecret is the webhook secret of the fleet's GitHub remote.
var ghSecret = []byte("e2e-webhook-secret")

// Farm is one farm's shared parts: a fleet repository, keys, a builder
// configuration fetching from the repository and sending statuses to a
// fake GitHub, and, once UsePostgres/UseMinIO are called, the database
// and cache bucket every builder of the farm shares.
type Farm struct {
	Dir      string
	Config   string
	Repo     *fleettest.Repo
	Statuses *StatusRecorder
	CacheKey cache.SecretKey
	// Env is the environment of every process: the tests' Nix
	// configuration and, with MinIO, its credentials.
	Env []string

	DSN    string // with UsePostgres: the database (a schema of its own)
	MinIO  *miniotest.Server
	Bucket string // with UseMinIO: the cache bucket
}

// NewFarm makes a farm whose fleet repository has hosts committed.
func NewFarm(t testing.TB, hosts map[string]fleettest.Host) *Farm {
	t.Helper()
	f := &Farm{Dir: t.TempDir(), Repo: fleettest.New(t, hosts), Env: testenv.Nix(t)}
	f.Statuses = NewStatusRecorder(t)
	f.CacheKey, _ = cache.GenerateKey("farm-e2e-cache-1")
	deployKey, _ := cache.GenerateKey("farm-e2e-deploy-1")
	for name, v := range map[string]string{"gh": string(ghSecret), "gh-token": "ghtok\n",
		"cache.key": f.CacheKey.String(), "deploy.key": deployKey.String()} {
		if err := os.WriteFile(filepath.Join(f.Dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f.Config = filepath.Join(f.Dir, "builder.toml")
	src := fmt.Sprintf(`signing_key_file = "cache.key"
deploy_key_file = "deploy.key"
[[repository]]
name = "homelab"
deploy_branch = "main"
branches = ["main", "staging"]
  [[repository.remote]]
  forge = "github"
  url = "https://github.com/alice/homelab"
  clone_url = %q
  api_url = %q
  secret_files = ["gh"]
  token_file = "gh-token"
`, f.Repo.Dir, f.Statuses.URL+"/")
	if err := os.WriteFile(f.Config, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// UsePostgres gives the farm a PostgreSQL schema of its own for the queue
// and the state of all its builders.
func (f *Farm) UsePostgres(t testing.TB) {
	t.Helper()
	_, f.DSN = testenv.PostgresSchema(t, "e2e")
}

// UseMinIO gives the farm a bucket of its own on the shared MinIO as its
// binary cache.
func (f *Farm) UseMinIO(t testing.TB) {
	t.Helper()
	f.MinIO = miniotest.Start(t)
	f.Bucket = f.MinIO.NewBucket(t)
	f.Env = append(f.Env, f.MinIO.Env()...)
}

// Args are the arguments of `builder serve` for the farm's instance name
// (its own state directory), then extra.
func (f *Farm) Args(name string, extra ...string) []string {
	args := []string{"--config", f.Config, "--state-dir", filepath.Join(f.Dir, "state-"+name)}
	if f.DSN != "" {
		args = append(args, "--database", f.DSN)
	}
	if f.MinIO != nil {
		args = append(args, "--cache", f.MinIO.CacheURL(f.Bucket))
	}
	return append(args, extra...)
}

// NarInfos counts the narinfos in the farm's bucket: the store paths the
// cache advertises.
func (f *Farm) NarInfos(t testing.TB) int {
	t.Helper()
	n := 0
	for obj := range f.MinIO.Client().ListObjects(context.Background(), f.Bucket, minio.ListObjectsOptions{}) {
		if obj.Err != nil {
			t.Fatalf("list bucket %s: %v", f.Bucket, obj.Err)
		}
		if strings.HasSuffix(obj.Key, ".narinfo") {
			n++
		}
	}
	return n
}

// Push sends a signed GitHub push of commit to main to the builder at base
// and returns the job it queued.
func (f *Farm) Push(t testing.TB, base, commit, delivery string) int64 {
	t.Helper()
	return f.PushBranch(t, base, "main", commit, delivery)
}

// PushBranch is Push to branch.
func (f *Farm) PushBranch(t testing.TB, base, branch, commit, delivery string) int64 {
	t.Helper()
	return postPush(t, base, branch, commit, delivery, ghSecret)
}

// postPush sends a GitHub push webhook of commit to branch, signed with
// secret, to the builder at base and returns the job it queued.
func postPush(t testing.TB, base, branch, commit, delivery string, secret []byte) int64 {
	t.Helper()
	var payload map[string]any
	fixture, err := os.ReadFile("../internal/forge/github/testdata/push.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(fixture, &payload); err != nil {
		t.Fatal(err)
	}
	payload["after"], payload["before"], payload["ref"] = commit, strings.Repeat("0", 40), "refs/heads/"+branch
	body, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/hooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", github.Sign(body, secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %s %s", resp.Status, b)
	}
	var r struct{ Job int64 }
	if err := json.Unmarshal(b, &r); err != nil || r.Job == 0 {
		t.Fatalf("webhook answer %s: no job id", b)
	}
	return r.Job
}

// Builder is one running `builder serve` process.
type Builder struct {
	Name string
	Base string // http://127.0.0.1:PORT
	Logs *testenv.Buffer
	cmd  *exec.Cmd
	exit chan struct{}
	err  error
}

// StartBuilder runs `builder serve` with args on a free port of 127.0.0.1
// chosen here and waits until /healthz answers. It is killed at cleanup.
func StartBuilder(t testing.TB, name string, env []string, args ...string) *Builder {
	t.Helper()
	return StartBuilderOn(t, -1, name, env, args...)
}

// StartBuilderOn is StartBuilder with the builder and everything it starts
// pinned to one CPU (taskset), as if it were a machine of one core; cpu -1
// pins nothing.
func StartBuilderOn(t testing.TB, cpu int, name string, env []string, args ...string) *Builder {
	t.Helper()
	return startServer(t, cpu, name, env, []string{filepath.Join(binDir, "builder"), "serve"}, args)
}

// StartHoldingBuilder is StartBuilder running holdbuilder: `builder serve`
// whose workers hold every job they claim for hold, then complete it
// without evaluating it.
func StartHoldingBuilder(t testing.TB, name string, hold time.Duration, env []string, args ...string) *Builder {
	t.Helper()
	return startServer(t, -1, name, env, []string{filepath.Join(binDir, "holdbuilder"), "--hold", hold.String()}, args)
}

// startServer runs the program command with --listen on a free port of
// 127.0.0.1 chosen here, then args, and waits until /healthz answers.
func startServer(t testing.TB, cpu int, name string, env, command, args []string) *Builder {
	t.Helper()
	port := freePort(t)
	b := &Builder{Name: name, Base: "http://127.0.0.1:" + port, Logs: &testenv.Buffer{}, exit: make(chan struct{})}
	argv := append(append(command, "--listen", "127.0.0.1:"+port), args...)
	if cpu >= 0 {
		argv = append([]string{"taskset", "-c", strconv.Itoa(cpu)}, argv...)
	}
	b.cmd = exec.Command(argv[0], argv[1:]...)
	b.cmd.Env = append(env, "BUILDER_CONFIG=", "BUILDER_STATE_DIR=", "BUILDER_LISTEN=", "BUILDER_QUEUE=", "BUILDER_DATABASE=")
	b.cmd.Stdout, b.cmd.Stderr = b.Logs, b.Logs
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		b.err = b.cmd.Wait()
		close(b.exit)
	}()
	t.Cleanup(func() {
		b.Kill()
		if t.Failed() {
			t.Logf("builder %s log:\n%s", name, b.Logs.String())
		}
	})
	testenv.Eventually(t, time.Minute, func() error {
		select {
		case <-b.exit:
			return fmt.Errorf("builder %s exited: %v\n%s", name, b.err, b.Logs.String())
		default:
		}
		resp, err := http.Get(b.Base + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /healthz: %s", resp.Status)
		}
		return nil
	}, "builder %s answering on %s", name, b.Base)
	return b
}

// PID is the builder's process id.
func (b *Builder) PID() int { return b.cmd.Process.Pid }

// Kill kills the builder and every process it started (its nix builds),
// with SIGKILL, as when its machine dies, and waits for it to exit.
func (b *Builder) Kill() {
	select {
	case <-b.exit:
		return
	default:
	}
	// Stop the tree first, so that nothing forks while it is killed.
	tree := append([]int{b.PID()}, descendants(b.PID())...)
	for _, pid := range tree {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	for _, pid := range append(tree, descendants(b.PID())...) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	<-b.exit
}

// descendants returns the processes below pid, from /proc.
func descendants(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
		fields := strings.Fields(rest)
		if len(fields) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(fields[1]); err == nil {
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			out = append(out, c)
			walk(c)
		}
	}
	walk(pid)
	return out
}

// freePort returns a TCP port of 127.0.0.1 free right now.
func freePort(t testing.TB) string {
	t.Helper()
	return freePortOn(t, "127.0.0.1")
}

// freePortOn returns a TCP port free on ip right now.
func freePortOn(t testing.TB, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// Job is GET /api/jobs/{id}.
type Job struct {
	queue.Job
	Eval int64 `json:"eval"`
}

// Evaluation is GET /api/evaluations/{id}.
type Evaluation struct {
	state.Evaluation
	Targets []state.Target `json:"targets"`
}

// Hosts returns the evaluation's targets by host.
func (e Evaluation) Hosts() map[string]state.Target {
	m := map[string]state.Target{}
	for _, tg := range e.Targets {
		m[tg.Host] = tg
	}
	return m
}

// Finished reports whether the evaluation ended.
func (e Evaluation) Finished() bool {
	return e.State == state.EvalDone || e.State == state.EvalFailed
}

// getJSON GETs url into v and returns the status code (v is left alone
// unless it is 200).
func getJSON(t testing.TB, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("decode %s: %v", url, err)
		}
	}
	return resp.StatusCode
}

// GetJob returns the job as the builder at base shows it.
func GetJob(t testing.TB, base string, id int64) Job {
	t.Helper()
	var j Job
	if code := getJSON(t, fmt.Sprintf("%s/api/jobs/%d", base, id), &j); code != http.StatusOK {
		t.Fatalf("GET /api/jobs/%d: %d", id, code)
	}
	return j
}

// GetEvaluation returns job's evaluation on the builder at base (the zero
// Evaluation before a worker started it).
func GetEvaluation(t testing.TB, base string, job int64) Evaluation {
	t.Helper()
	var ev Evaluation
	if j := GetJob(t, base, job); j.Eval != 0 {
		getJSON(t, fmt.Sprintf("%s/api/evaluations/%d", base, j.Eval), &ev)
	}
	return ev
}

// WaitEvaluation waits until job's evaluation finished and returns it.
func WaitEvaluation(t testing.TB, base string, job int64, timeout time.Duration) Evaluation {
	t.Helper()
	var ev Evaluation
	testenv.Eventually(t, timeout, func() bool {
		ev = GetEvaluation(t, base, job)
		return ev.Finished()
	}, "evaluation of job %d finished", job)
	return ev
}

// EventStream follows /api/events of one builder.
type EventStream struct {
	mu     sync.Mutex
	events []state.Event
	done   chan struct{}
	err    error
	cancel context.CancelFunc
}

// FollowEvents follows base's event stream, resuming after lastID (0: from
// the first event), until the connection ends or the test does.
func FollowEvents(t testing.TB, base string, lastID int64) *EventStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &EventStream{done: make(chan struct{}), cancel: cancel}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/events", nil)
	if lastID > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(lastID, 10))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s/api/events: %v", base, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s/api/events: %s", base, resp.Status)
	}
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var ev state.Event
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				s.mu.Lock()
				s.err = fmt.Errorf("event %q: %w", data, err)
				s.mu.Unlock()
				return
			}
			s.mu.Lock()
			s.events = append(s.events, ev)
			s.mu.Unlock()
		}
		if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
		}
	}()
	t.Cleanup(s.Stop)
	return s
}

// Events returns the events received so far.
func (s *EventStream) Events() []state.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]state.Event(nil), s.events...)
}

// Stop ends the stream and waits for its reader.
func (s *EventStream) Stop() {
	s.cancel()
	<-s.done
}

// Ended is closed when the stream ended.
func (s *EventStream) Ended() <-chan struct{} { return s.done }

// StatusCall is one commit status the fake GitHub received.
type StatusCall struct {
	Path    string // /repos/alice/homelab/statuses/<commit>
	Context string
	State   string
}

// StatusRecorder is a fake GitHub API on 127.0.0.1 that records every
// commit status posted to it.
type StatusRecorder struct {
	URL   string
	mu    sync.Mutex
	calls []StatusCall
}

// NewStatusRecorder starts the fake GitHub; it stops at cleanup.
func NewStatusRecorder(t testing.TB) *StatusRecorder {
	t.Helper()
	r := &StatusRecorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body struct{ State, Context string }
		if req.Method != http.MethodPost || json.NewDecoder(req.Body).Decode(&body) != nil {
			http.Error(w, "want a POSTed status", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.calls = append(r.calls, StatusCall{Path: req.URL.Path, Context: body.Context, State: body.State})
		r.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{}`)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// Calls returns the statuses received so far, in order.
func (r *StatusRecorder) Calls() []StatusCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]StatusCall(nil), r.calls...)
}
