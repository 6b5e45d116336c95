package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/file"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/git"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/queue/sqlite"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
)

// fakeForge records commit statuses.
type fakeForge struct {
	mu  sync.Mutex
	got map[string]forge.Status // "<commit> <context>" -> last status
}

func (f *fakeForge) SetStatus(_ context.Context, fullName, commit string, st forge.Status) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.got == nil {
		f.got = map[string]forge.Status{}
	}
	f.got[commit+" "+st.Context] = st
	return nil
}

func (f *fakeForge) status(commit, ctx string) forge.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got[commit+" "+ctx]
}

type farm struct {
	p      *pipeline.Pipeline
	q      queue.Queue
	st     *state.Store
	cache  cache.Backend
	forge  *fakeForge
	deploy cache.SecretKey
	repo   *fleettest.Repo
}

func newFarm(t *testing.T, hosts map[string]fleettest.Host) *farm {
	t.Helper()
	env := testenv.Nix(t)
	ctx := context.Background()
	dir := t.TempDir()
	q, err := sqlite.Open(ctx, filepath.Join(dir, "queue.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	st, err := state.Open(ctx, filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b, err := file.Open(filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	cacheKey, _ := cache.GenerateKey("farm-test-cache-1")
	deployKey, _ := cache.GenerateKey("farm-test-deploy-1")
	ff := &fakeForge{}
	mirror := &git.Mirror{Dir: filepath.Join(dir, "mirror")}
	f := &farm{q: q, st: st, cache: b, forge: ff, deploy: deployKey, repo: fleettest.New(t, hosts)}
	f.p = &pipeline.Pipeline{
		State: st, Nix: &nix.Client{Env: env}, Mirrors: func(string) *git.Mirror { return mirror },
		Cache: b, CacheKey: cacheKey, Signer: deploy.KeySigner{Key: deployKey}, CacheURL: "http://127.0.0.1:1/nix-cache",
		Statuses:    &pipeline.Statuses{For: func(queue.Remote) forge.StatusClient { return ff }},
		LogDir:      filepath.Join(dir, "logs"),
		EvalOptions: nix.EvalOptions{Jobs: 2},
	}
	return f
}

func (f *farm) push(t *testing.T, commit string) int64 {
	t.Helper()
	res, err := f.q.Enqueue(context.Background(), queue.EnqueueRequest{
		Kind: queue.KindEval, Key: "homelab@" + commit, Repo: "homelab", Branch: "main", Commit: commit,
		Deploy: true, Supersede: true,
		Remote: queue.Remote{Forge: "github", URL: f.repo.Dir, FullName: "rain/homelab"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.JobID
}

// runAll runs the queued jobs through the pool, one worker, until none is
// ready, and returns how many ran. A job that fails fails the test.
func (f *farm) runAll(t *testing.T) int {
	t.Helper()
	n, err := f.runReady()
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	return n
}

// runReady runs the queued jobs through the pool, one worker, until none
// is ready, and returns how many ran and Process's errors.
func (f *farm) runReady() (int, error) {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var n int
	var errs []error
	pool := &pipeline.Pool{
		Queue:   drainQueue{f.q, stop},
		Workers: 1,
		Process: func(ctx context.Context, job queue.Job) ([]byte, error) {
			n++
			res, err := f.p.Process(ctx, job)
			if err != nil {
				errs = append(errs, err)
			}
			return res, err
		},
	}
	pool.Run(ctx)
	return n, errors.Join(errs...)
}

// drainQueue stops the pool (stop) once the queue has nothing ready.
type drainQueue struct {
	queue.Queue
	stop context.CancelFunc
}

func (d drainQueue) Claim(ctx context.Context, req queue.ClaimRequest) (queue.Job, error) {
	j, err := d.Queue.Claim(ctx, req)
	if errors.Is(err, queue.ErrEmpty) {
		d.stop()
	}
	return j, err
}

func (f *farm) targets(t *testing.T) map[string]state.Target {
	t.Helper()
	evs, err := f.st.Evaluations(context.Background(), 1)
	if err != nil || len(evs) == 0 {
		t.Fatalf("no evaluation: %v", err)
	}
	ts, err := f.st.Targets(context.Background(), evs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]state.Target{}
	for _, tg := range ts {
		out[tg.Host] = tg
	}
	return out
}

func TestPipelineEndToEnd(t *testing.T) {
	hosts := map[string]fleettest.Host{
		"alpha":  {System: "x86_64-linux", Version: "1"},
		"beta":   {System: "x86_64-linux", Version: "1"},
		"pi":     {System: "aarch64-linux", Version: "1"},
		"mac":    {System: "aarch64-darwin", Version: "1", Kind: "darwin"},
		"broken": {System: "x86_64-linux", Version: "1", Broken: true},
	}
	f := newFarm(t, hosts)
	ctx := context.Background()
	c1 := strings.TrimSpace(gitHead(t, f.repo))
	f.push(t, c1)
	if n := f.runAll(t); n != 1 {
		t.Fatalf("ran %d jobs, want 1", n)
	}
	got := f.targets(t)
	want := map[string]string{"alpha": state.TargetBuilt, "beta": state.TargetBuilt, "pi": state.TargetBuilt,
		"mac": state.TargetSkipped, "broken": state.TargetFailed}
	for host, st := range want {
		if got[host].State != st {
			t.Errorf("%s: %s (%s), want %s", host, got[host].State, got[host].Reason, st)
		}
	}
	if r := got["mac"].Reason; r != "no builder for aarch64-darwin" {
		t.Errorf("mac reason = %q, want %q", r, "no builder for aarch64-darwin")
	}
	if r := got["broken"].Reason; !strings.Contains(r, "option does not exist") {
		t.Errorf("broken reason = %q, want the evaluation error", r)
	}
	// Every built closure is in the cache and verifies.
	rep, err := cache.Verify(ctx, f.cache, []cache.PublicKey{f.p.CacheKey.Public()}, cache.VerifyOptions{})
	if err != nil || !rep.OK() || rep.NarInfos != 3 {
		t.Fatalf("cache: %+v, %v; want 3 consistent paths", rep, err)
	}
	// Statuses: overall failure (broken), per host.
	if s := f.forge.status(c1, "farm/eval"); s.State != forge.StateFailure {
		t.Errorf("overall status = %+v, want failure", s)
	}
	if s := f.forge.status(c1, "farm/host/alpha"); s.State != forge.StateSuccess {
		t.Errorf("alpha status = %+v, want success", s)
	}
	if s := f.forge.status(c1, "farm/host/broken"); s.State != forge.StateFailure {
		t.Errorf("broken status = %+v, want failure", s)
	}
	// Desired closures with manifests that verify.
	for _, host := range []string{"alpha", "beta", "pi"} {
		h, err := f.st.Host(ctx, host)
		if err != nil || h.DesiredPath != got[host].OutPath || h.DesiredCommit != c1 {
			t.Fatalf("host %s = %+v, %v; want desired %s", host, h, err, got[host].OutPath)
		}
		var signed deploy.Signed
		if err := json.Unmarshal(h.Manifest, &signed); err != nil {
			t.Fatal(err)
		}
		m, err := deploy.Verify(signed, []cache.PublicKey{f.deploy.Public()}, host, time.Now(), 0)
		if err != nil || m.StorePath != h.DesiredPath {
			t.Fatalf("manifest of %s: %+v, %v", host, m, err)
		}
	}
	if _, err := f.st.Host(ctx, "mac"); err == nil {
		t.Errorf("skipped host mac got a desired closure")
	}

	// A second push changing only beta rebuilds only beta.
	hosts["beta"] = fleettest.Host{System: "x86_64-linux", Version: "2"}
	c2 := f.repo.Commit(t, hosts, "beta v2")
	f.push(t, c2)
	f.runAll(t)
	got = f.targets(t)
	for host, st := range map[string]string{"alpha": state.TargetCached, "pi": state.TargetCached, "beta": state.TargetBuilt} {
		if got[host].State != st {
			t.Errorf("second push: %s is %s, want %s", host, got[host].State, st)
		}
	}
	h, _ := f.st.Host(ctx, "beta")
	if h.DesiredCommit != c2 {
		t.Errorf("beta desired commit = %s, want %s", h.DesiredCommit, c2)
	}
	// The build log of beta is kept and uploaded.
	if _, err := f.cache.Stat(ctx, "log/"+filepath.Base(got["beta"].DrvPath)); err != nil {
		t.Errorf("build log of beta not in the cache: %v", err)
	}
}

func TestThreeQuickPushes(t *testing.T) {
	hosts := map[string]fleettest.Host{"alpha": {System: "x86_64-linux", Version: "1"}}
	f := newFarm(t, hosts)
	ctx := context.Background()
	var commits []string
	for i := 2; i <= 4; i++ {
		hosts["alpha"] = fleettest.Host{System: "x86_64-linux", Version: string(rune('0' + i))}
		commits = append(commits, f.repo.Commit(t, hosts, "v"))
		f.push(t, commits[len(commits)-1])
	}
	if n := f.runAll(t); n != 1 {
		t.Errorf("ran %d evaluations, want 1 (the older two superseded)", n)
	}
	h, err := f.st.Host(ctx, "alpha")
	if err != nil || h.DesiredCommit != commits[2] {
		t.Fatalf("alpha desired = %+v, %v; want commit %s", h, err, commits[2])
	}
	// The oldest commit arriving late must not take the deployment back.
	f.push(t, commits[0])
	f.runAll(t)
	h, _ = f.st.Host(ctx, "alpha")
	if h.DesiredCommit != commits[2] {
		t.Errorf("after a late older push alpha wants %s, want %s", h.DesiredCommit, commits[2])
	}
}

func gitHead(t *testing.T, r *fleettest.Repo) string {
	t.Helper()
	return r.CommitAll(t, "head")
}

// TestSilentBuildTimesOut: a build that prints nothing for longer than
// MaxSilent fails with Nix's reason; the other hosts are not held up.
func TestSilentBuildTimesOut(t *testing.T) {
	hosts := map[string]fleettest.Host{
		"quiet": {System: "x86_64-linux", Version: "t" + time.Now().Format("150405.000"), Sleep: 5},
		"alpha": {System: "x86_64-linux", Version: "t" + time.Now().Format("150405.000")},
	}
	f := newFarm(t, hosts)
	f.p.MaxSilent = 2 * time.Second
	f.p.BuildRetries = -1
	f.push(t, f.repo.CommitAll(t, "quiet"))
	f.runAll(t)
	got := f.targets(t)
	if q := got["quiet"]; q.State != state.TargetFailed || !strings.Contains(q.Reason, "silence") {
		t.Errorf("quiet = %s (%s), want failed after 2 s of silence", q.State, q.Reason)
	}
	if got["alpha"].State != state.TargetBuilt {
		t.Errorf("alpha = %s (%s), want built", got["alpha"].State, got["alpha"].Reason)
	}
}
