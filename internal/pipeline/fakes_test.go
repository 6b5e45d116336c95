package pipeline_test

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/file"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/git"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/queue/sqlite"
	"github.com/homelab-farm/farm/internal/state"
)

// fakeNix is the pipeline's Nix as a struct of funcs.
type fakeNix struct {
	eval     func(ctx context.Context, flake string, opts nix.EvalOptions) ([]nix.Target, error)
	capacity func(ctx context.Context, builders string) (nix.Capacity, error)
	realise  func(ctx context.Context, drvPath string, opts nix.BuildOptions) ([]string, error)
	pathInfo func(ctx context.Context, paths ...string) ([]nix.PathInfo, error)
	closure  func(ctx context.Context, root string) (map[string]uint64, error)
}

var _ pipeline.Nix = (*fakeNix)(nil)

func (f *fakeNix) Eval(ctx context.Context, flake string, opts nix.EvalOptions) ([]nix.Target, error) {
	return f.eval(ctx, flake, opts)
}

func (f *fakeNix) Capacity(ctx context.Context, builders string) (nix.Capacity, error) {
	return f.capacity(ctx, builders)
}

func (f *fakeNix) Realise(ctx context.Context, drvPath string, opts nix.BuildOptions) ([]string, error) {
	return f.realise(ctx, drvPath, opts)
}

func (f *fakeNix) PathInfo(ctx context.Context, paths ...string) ([]nix.PathInfo, error) {
	return f.pathInfo(ctx, paths...)
}

func (f *fakeNix) ClosureSizes(ctx context.Context, root string) (map[string]uint64, error) {
	return f.closure(ctx, root)
}

// fakeMetrics counts what the pipeline measures.
type fakeMetrics struct {
	mu       sync.Mutex
	evals    int
	builds   map[string]int
	failures map[string]int
}

func (m *fakeMetrics) EvalDuration(time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.evals++
}

func (m *fakeMetrics) BuildDuration(system string, _ time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.builds == nil {
		m.builds = map[string]int{}
	}
	m.builds[system]++
}

func (m *fakeMetrics) PushDuration(time.Duration, int64) {}

func (m *fakeMetrics) Failure(kind string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failures == nil {
		m.failures = map[string]int{}
	}
	m.failures[kind]++
}

// fleetHost is one host of a fleet commit as the fake Nix sees it.
type fleetHost struct {
	System  string // default x86_64-linux
	Version string // change it to change the host's closure
	Broken  string // evaluation error
	Fail    bool   // the build fails (not transiently)
	// Packages are the closure's packages besides the system itself:
	// name -> version, each one store path "<name>-<version>".
	Packages map[string]string
}

// evaluated is a derivation the fake Nix evaluated.
type evaluated struct {
	host, out string
	fail      bool
	closure   map[string]uint64 // every path of out's closure with its NAR size
}

// realiseCall is one Realise the fake Nix was asked for.
type realiseCall struct {
	Host    string
	DrvPath string
	AddRoot string
}

// harness runs the real pipeline against a real git repository, mirror,
// queue, state and file cache, with Nix faked: evaluation reads the hosts
// a commit was made with, and a build that succeeds publishes its narinfo
// to the cache (as a post-build hook would), so the push after it has
// nothing left to upload. No test using it needs Nix.
type harness struct {
	p      *pipeline.Pipeline
	nix    *fakeNix
	st     *state.Store
	q      queue.Queue
	cache  cache.Backend
	key    cache.SecretKey // the deploy key
	repo   string          // the pushed repository (a working tree)
	mirror *git.Mirror
	gc     string // the gc roots directory

	mu       sync.Mutex
	fleets   map[string]map[string]fleetHost // commit -> hosts
	drvs     map[string]evaluated            // drv path -> what it builds
	evals    []string                        // commits evaluated, in order
	built    map[string]map[string]uint64    // out path -> closure, once built
	realised []realiseCall
	nextJob  int64
}

// openStateAndCache opens a state database and a directory cache in a new
// temporary directory, closed when the test ends, and returns the
// directory too.
func openStateAndCache(t *testing.T) (string, *state.Store, *file.Backend) {
	t.Helper()
	dir := t.TempDir()
	st, err := state.Open(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b, err := file.Open(filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	return dir, st, b
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx := context.Background()
	dir, st, b := openStateAndCache(t)
	q, err := sqlite.Open(ctx, filepath.Join(dir, "queue.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	cacheKey, _ := cache.GenerateKey("farm-test-cache-1")
	deployKey, _ := cache.GenerateKey("farm-test-deploy-1")
	h := &harness{
		st: st, q: q, cache: b, key: deployKey,
		repo:    filepath.Join(dir, "repo"),
		mirror:  &git.Mirror{Dir: filepath.Join(dir, "mirror")},
		gc:      filepath.Join(dir, "gcroots"),
		fleets:  map[string]map[string]fleetHost{},
		drvs:    map[string]evaluated{},
		built:   map[string]map[string]uint64{},
		nextJob: 1000,
	}
	h.nix = &fakeNix{
		eval: h.eval,
		capacity: func(context.Context, string) (nix.Capacity, error) {
			return nix.Capacity{LocalSystems: []string{"aarch64-linux", "x86_64-linux"}}, nil
		},
		realise: h.realise,
		closure: h.closure,
		pathInfo: func(_ context.Context, paths ...string) ([]nix.PathInfo, error) {
			infos := make([]nix.PathInfo, len(paths))
			for i, p := range paths {
				infos[i] = nix.PathInfo{Path: p}
			}
			return infos, nil
		},
	}
	h.p = &pipeline.Pipeline{
		State: st, Nix: h.nix, Mirrors: func(string) *git.Mirror { return h.mirror },
		Cache: b, CacheKey: cacheKey, Signer: deploy.KeySigner{Key: deployKey}, CacheURL: "http://127.0.0.1:1/nix-cache",
		LogDir: filepath.Join(dir, "logs"), GCRootDir: h.gc,
		BuildRetryWait: time.Millisecond,
	}
	if err := os.Mkdir(h.repo, 0o755); err != nil {
		t.Fatal(err)
	}
	h.git(t, "init", "-q", "-b", "main")
	return h
}

// git runs git in the repository.
func (h *harness) git(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", h.repo}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit commits hosts as the fleet (nix/hosts.json) on the current
// branch and returns the commit id.
func (h *harness) commit(t *testing.T, hosts map[string]fleetHost, msg string) string {
	t.Helper()
	body, err := json.Marshal(hosts)
	if err != nil {
		t.Fatal(err)
	}
	return h.commitFile(t, "nix/hosts.json", string(body), msg)
}

// commitFile writes one file of the repository and commits; the fleet is
// what the last commit of the fleet said.
func (h *harness) commitFile(t *testing.T, path, body, msg string) string {
	t.Helper()
	full := filepath.Join(h.repo, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	h.git(t, "add", "-A")
	h.git(t, "-c", "user.name=fleet", "-c", "user.email=fleet@example.invalid", "commit", "-q", "--allow-empty", "-m", msg)
	c := h.git(t, "rev-parse", "HEAD")
	var hosts map[string]fleetHost
	if b, err := os.ReadFile(filepath.Join(h.repo, "nix/hosts.json")); err == nil {
		if err := json.Unmarshal(b, &hosts); err != nil {
			t.Fatal(err)
		}
	}
	h.mu.Lock()
	h.fleets[c] = hosts
	h.mu.Unlock()
	return c
}

// job is a deploy job for commit on main, as the queue hands it out.
func (h *harness) job(commit string) queue.Job {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextJob++
	return queue.Job{ID: h.nextJob, Kind: queue.KindEval, Key: "homelab@" + commit, Repo: "homelab", Branch: "main",
		Commit: commit, Deploy: true, Remotes: []queue.Remote{{Forge: "github", URL: h.repo, FullName: "rain/homelab"}}}
}

// process runs one job to its end, as a worker that holds its lease does.
func (h *harness) process(t *testing.T, job queue.Job) pipeline.Result {
	t.Helper()
	body, err := h.p.Process(context.Background(), job)
	if err != nil {
		t.Fatalf("process %s: %v", job.Commit[:7], err)
	}
	var res pipeline.Result
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// enqueue queues a push of commit to main (before: the commit main
// pointed to before it).
func (h *harness) enqueue(t *testing.T, commit, before string) queue.EnqueueResult {
	t.Helper()
	res, err := h.q.Enqueue(context.Background(), queue.EnqueueRequest{
		Kind: queue.KindEval, Key: "homelab@" + commit, Repo: "homelab", Branch: "main", Commit: commit, Before: before,
		Deploy: true, Supersede: true, Remote: queue.Remote{Forge: "github", URL: h.repo, FullName: "rain/homelab"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// drain claims and processes queued evaluation jobs until none is left,
// and returns the commits it ran.
func (h *harness) drain(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	var ran []string
	for {
		job, err := h.q.Claim(ctx, queue.ClaimRequest{Worker: "test", Kinds: []string{queue.KindEval}, Lease: time.Minute})
		if errors.Is(err, queue.ErrEmpty) {
			return ran
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := h.p.Process(ctx, job)
		if err != nil {
			t.Fatalf("process %s: %v", job.Commit[:7], err)
		}
		if err := h.q.Complete(ctx, job.ID, job.Token, body); err != nil {
			t.Fatal(err)
		}
		ran = append(ran, job.Commit)
	}
}

// targets returns the targets of the evaluation of a job by host.
func (h *harness) targets(t *testing.T, jobID int64) map[string]state.Target {
	t.Helper()
	ctx := context.Background()
	ev, err := h.st.EvaluationByJob(ctx, jobID)
	if err != nil {
		t.Fatalf("evaluation of job %d: %v", jobID, err)
	}
	ts, err := h.st.Targets(ctx, ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]state.Target{}
	for _, tg := range ts {
		out[tg.Host] = tg
	}
	return out
}

// host returns what the state wants host to run; a host never deployed is
// the zero Host.
func (h *harness) host(t *testing.T, name string) state.Host {
	t.Helper()
	got, err := h.st.Host(context.Background(), name)
	if errors.Is(err, state.ErrNotFound) {
		return state.Host{}
	}
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// events returns the event log.
func (h *harness) events(t *testing.T) []state.Event {
	t.Helper()
	evs, err := h.st.EventsAfter(context.Background(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// manifest verifies host's stored manifest with the deploy key.
func (h *harness) manifest(t *testing.T, host string) deploy.Manifest {
	t.Helper()
	var s deploy.Signed
	if err := json.Unmarshal(h.host(t, host).Manifest, &s); err != nil {
		t.Fatalf("manifest of %s: %v", host, err)
	}
	m, err := deploy.Verify(s, []cache.PublicKey{h.key.Public()}, host, time.Now(), 0)
	if err != nil {
		t.Fatalf("manifest of %s: %v", host, err)
	}
	return m
}

func (h *harness) evaluatedCommits() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.evals)
}

func (h *harness) realisedHosts() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, c := range h.realised {
		out = append(out, c.Host)
	}
	slices.Sort(out)
	return out
}

// eval answers for the commit in flake's rev, as Nix does: hosts in name
// order, invalid names failed under their placeholders.
func (h *harness) eval(_ context.Context, flake string, _ nix.EvalOptions) ([]nix.Target, error) {
	u, err := url.Parse(flake)
	if err != nil {
		return nil, err
	}
	commit := u.Query().Get("rev")
	h.mu.Lock()
	defer h.mu.Unlock()
	hosts, ok := h.fleets[commit]
	if !ok {
		return nil, fmt.Errorf("no fleet at %q", commit)
	}
	h.evals = append(h.evals, commit)
	targets := nix.TargetsFromNames("nixos", slices.Sorted(maps.Keys(hosts)))
	for i, tg := range targets {
		if tg.Error != "" {
			continue
		}
		fh := hosts[tg.Host]
		if fh.Broken != "" {
			targets[i].Error = fh.Broken
			continue
		}
		targets[i].System = cmp.Or(fh.System, "x86_64-linux")
		targets[i].DrvPath = storePath(tg.Host, fh.Version, "drv") + ".drv"
		targets[i].OutPath = storePath(tg.Host, fh.Version, "out")
		closure := map[string]uint64{targets[i].OutPath: 1000}
		for name, version := range fh.Packages {
			closure[pkgPath(name, version)] = pkgSize(name, version)
		}
		h.drvs[targets[i].DrvPath] = evaluated{host: tg.Host, out: targets[i].OutPath, fail: fh.Fail, closure: closure}
	}
	return targets, nil
}

// realise "builds" a derivation of an evaluated fleet: it fails if the
// host is marked Fail, else it publishes the output's narinfo.
func (h *harness) realise(ctx context.Context, drv string, opts nix.BuildOptions) ([]string, error) {
	h.mu.Lock()
	d, ok := h.drvs[drv]
	h.realised = append(h.realised, realiseCall{Host: d.host, DrvPath: drv, AddRoot: opts.AddRoot})
	h.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("realise %s: not evaluated", drv)
	}
	fmt.Fprintf(opts.Log, "building '%s'...\n", drv)
	if d.fail {
		return nil, &nix.Error{Cmd: "nix-store --realise", Stderr: "building '" + drv + "'...\nerror: builder for '" + drv + "' failed with exit code 1\n", Err: errors.New("exit status 1")}
	}
	h.mu.Lock()
	h.built[d.out] = d.closure
	h.mu.Unlock()
	for p, size := range d.closure {
		if p == d.out {
			continue
		}
		if err := publishPath(ctx, h.cache, p, size, nil); err != nil {
			return nil, err
		}
	}
	if err := publishPath(ctx, h.cache, d.out, d.closure[d.out], slices.Sorted(maps.Keys(d.closure))); err != nil {
		return nil, err
	}
	return []string{d.out}, nil
}

// closure answers for the closures built so far, as the builder's store
// holds them.
func (h *harness) closure(_ context.Context, root string) (map[string]uint64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.built[root]
	if !ok {
		return nil, fmt.Errorf("closure of %s: %w", root, nix.ErrNotInStore)
	}
	return maps.Clone(c), nil
}

// publish puts out's narinfo (a closure of one path) into the cache and
// returns out.
func publish(ctx context.Context, b cache.Backend, out string) ([]string, error) {
	if err := publishPath(ctx, b, out, 1000, nil); err != nil {
		return nil, err
	}
	return []string{out}, nil
}

// publishPath puts a narinfo for path into the cache: its NAR size, a
// compressed size of a quarter of it (fileSize), and its references.
func publishPath(ctx context.Context, b cache.Backend, path string, narSize uint64, refs []string) error {
	var names []string
	for _, r := range refs {
		names = append(names, strings.TrimPrefix(r, nix.StoreDir+"/"))
	}
	info := fmt.Sprintf("StorePath: %s\nURL: nar/%s.nar.zst\nCompression: zstd\nFileHash: sha256:%s\nFileSize: %d\nNarHash: sha256:%s\nNarSize: %d\nReferences: %s\n",
		path, strings.Repeat("1", 52), strings.Repeat("0", 52), fileSize(narSize), strings.Repeat("0", 52), narSize, strings.Join(names, " "))
	return b.Put(ctx, cache.NarInfoKey(path), strings.NewReader(info), int64(len(info)))
}

// fileSize is the compressed size the fake cache gives a NAR of n bytes.
func fileSize(n uint64) uint64 { return n / 4 }

// pkgPath is the store path of a package of the fake fleet.
func pkgPath(name, version string) string {
	return strings.TrimSuffix(storePath(name, version, "pkg"), "-nixos-system-"+name) + "-" + name + "-" + version
}

// pkgSize is the NAR size of a package of the fake fleet.
func pkgSize(name, version string) uint64 { return uint64(4096 * (len(name) + len(version))) }

// storePath is a valid store path named after host, unique per version
// and what.
func storePath(host, version, what string) string {
	const alphabet = "0123456789abcdfghijklmnpqrsvwxyz" // Nix's base32
	sum := sha256.Sum256([]byte(host + "\x00" + version + "\x00" + what))
	var hash [32]byte
	for i := range hash {
		hash[i] = alphabet[sum[i]%32]
	}
	return nix.StoreDir + "/" + string(hash[:]) + "-nixos-system-" + host
}
