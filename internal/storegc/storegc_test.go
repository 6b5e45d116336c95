package storegc_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/storegc"
	"github.com/homelab-farm/farm/internal/testenv"
)

// closures.nix builds, in the test's own store: top -> dep, old -> olddep,
// and three unreferenced paths (junk0..2), each with 64 KiB of data.
const closures = `{ nonce }:
let
  mk = name: refs: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" ("export PATH=/usr/bin:/bin; mkdir $out; head -c 65536 /dev/urandom > $out/data; echo " + nonce + " " + refs + " > $out/refs") ];
  };
  dep = mk "dep" "";
  olddep = mk "olddep" "";
in {
  top = mk "top" "${dep}";
  inherit dep olddep;
  old = mk "old" "${olddep}";
  junk0 = mk "junk0" "";
  junk1 = mk "junk1" "";
  junk2 = mk "junk2" "";
}
`

// testStore is a Nix store under a temporary directory holding the
// closures above.
type testStore struct {
	uri, root string
	nix       *nix.Client
	paths     map[string]string // attribute -> store path
}

func newTestStore(t *testing.T) *testStore {
	t.Helper()
	env := testenv.Nix(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "closures.nix")
	if err := os.WriteFile(file, []byte(closures), 0o644); err != nil {
		t.Fatal(err)
	}
	client := &nix.Client{Env: env}
	attrs := []string{"top", "dep", "olddep", "old", "junk0", "junk1", "junk2"}
	args := []string{"--argstr", "nonce", t.Name() + time.Now().String()}
	for _, a := range attrs {
		args = append(args, "-A", a)
	}
	out, err := client.BuildFile(context.Background(), file, args...)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(attrs) {
		t.Fatalf("built %v, want %d paths", out, len(attrs))
	}
	s := &testStore{root: filepath.Join(dir, "store"), paths: map[string]string{}}
	s.uri = "local?root=" + s.root
	s.nix = &nix.Client{Env: env}
	for i, a := range attrs {
		s.paths[a] = out[i]
	}
	cmd := exec.Command("nix", append([]string{"copy", "--no-check-sigs", "--to", s.uri}, out...)...)
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nix copy: %v\n%s", err, b)
	}
	return s
}

// valid reports which of attrs the test store holds.
func (s *testStore) valid(t *testing.T, attrs ...string) map[string]bool {
	t.Helper()
	var paths []string
	for _, a := range attrs {
		paths = append(paths, s.paths[a])
	}
	v, err := s.nix.ValidPaths(context.Background(), s.uri, paths)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, a := range attrs {
		out[a] = slices.Contains(v, s.paths[a])
	}
	return out
}

func (s *testStore) collector(t *testing.T, gate *storegc.Gate, retained ...string) *storegc.Collector {
	t.Helper()
	return &storegc.Collector{
		Nix: s.nix, Store: s.uri, StoreDir: filepath.Join(s.root, "nix", "store"),
		RootDir:  filepath.Join(s.root, "..", "gcroots"),
		Retained: func(context.Context) ([]string, error) { return retained, nil },
		Gate:     gate,
	}
}

// The roots follow the retention: the pipeline's host root to a closure no
// longer retained goes, and the collection removes that closure and
// everything unrooted, while retained closures stay with their references.
func TestCollectKeepsRetained(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	c := s.collector(t, &storegc.Gate{}, s.paths["top"],
		"/nix/store/00000000000000000000000000000000-not-here", "../../etc/passwd")
	// The pipeline rooted an old build of host alpha (--add-root).
	if err := os.MkdirAll(c.RootDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.nix.AddRoot(ctx, s.uri, filepath.Join(c.RootDir, "alpha"), s.paths["old"]); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.RootDir, "README"), []byte("not a root"), 0o644); err != nil {
		t.Fatal(err)
	}

	res, err := c.Collect(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := storegc.SyncResult{Added: 1, Removed: 1, Absent: 1, Skipped: 1}
	if res.Roots != want {
		t.Errorf("roots %+v, want %+v", res.Roots, want)
	}
	if res.GC.Paths != 5 || res.GC.Bytes <= 0 {
		t.Errorf("collected %+v, want old, olddep and three junk paths", res.GC)
	}
	got := s.valid(t, "top", "dep", "old", "olddep", "junk0", "junk1", "junk2")
	if want := map[string]bool{"top": true, "dep": true}; !mapsEqualTrue(got, want) {
		t.Errorf("store holds %v, want top and dep only", got)
	}
	entries, err := os.ReadDir(c.RootDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	wantNames := []string{"README", path.Base(s.paths["top"])}
	if slices.Sort(wantNames); !slices.Equal(names, wantNames) {
		t.Errorf("root directory holds %v, want %v (the README untouched)", names, wantNames)
	}
	if target, err := os.Readlink(filepath.Join(c.RootDir, path.Base(s.paths["top"]))); err != nil || target != s.paths["top"] {
		t.Errorf("top's root points at %q, %v", target, err)
	}

	// Again: nothing changes, the root stays and is not made twice.
	res, err = c.Collect(ctx, 0)
	if err != nil || res.Roots != (storegc.SyncResult{Kept: 1, Absent: 1, Skipped: 1}) || res.GC.Paths != 0 {
		t.Fatalf("second collection %+v, %v; want nothing to do", res, err)
	}
	if got := s.valid(t, "top", "dep"); !got["top"] || !got["dep"] {
		t.Fatalf("second collection took retained paths: %v", got)
	}
}

// mapsEqualTrue compares got's true entries with want's.
func mapsEqualTrue(got, want map[string]bool) bool {
	for k, v := range got {
		if v != want[k] {
			return false
		}
	}
	for k, v := range want {
		if v != got[k] {
			return false
		}
	}
	return true
}

// Below min-free, a check frees up to max-free: with one byte to free,
// Nix stops after the first path it deletes. At or above min-free it does
// nothing.
func TestCheckSpace(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	c := s.collector(t, &storegc.Gate{}, s.paths["top"], s.paths["old"])
	free := int64(10 << 20)
	c.FreeSpace = func(dir string) (int64, error) {
		if dir != c.StoreDir {
			t.Errorf("measured %s, want the store's directory %s", dir, c.StoreDir)
		}
		return free, nil
	}
	c.MinFree, c.MaxFree = 10<<20, 10<<20+1

	if _, ran, err := c.CheckSpace(ctx); err != nil || ran {
		t.Fatalf("CheckSpace at min-free: ran %v, %v; want nothing", ran, err)
	}
	if got := s.valid(t, "junk0", "junk1", "junk2"); !got["junk0"] || !got["junk1"] || !got["junk2"] {
		t.Fatalf("a check above the threshold collected: %v", got)
	}
	free = 10<<20 - 1
	res, ran, err := c.CheckSpace(ctx)
	if err != nil || !ran || res.MaxFreed != 2 {
		t.Fatalf("CheckSpace below min-free = %+v, ran %v, %v; want a run freeing up to 2 bytes", res, ran, err)
	}
	if res.GC.Paths != 1 {
		t.Errorf("freed %d paths, want 1 (max-freed reached)", res.GC.Paths)
	}
	got := s.valid(t, "junk0", "junk1", "junk2", "top", "dep", "old", "olddep")
	left := 0
	for _, j := range []string{"junk0", "junk1", "junk2"} {
		if got[j] {
			left++
		}
	}
	if left != 2 || !got["top"] || !got["dep"] || !got["old"] || !got["olddep"] {
		t.Errorf("store holds %v; want two junk paths and every retained path", got)
	}

	c.MaxFree = 0 // Nix's default: everything
	if res, ran, err := c.CheckSpace(ctx); err != nil || !ran || res.GC.Paths != 2 || res.MaxFreed != 0 {
		t.Fatalf("CheckSpace without max-free = %+v, ran %v, %v; want the two junk paths left", res, ran, err)
	}
}

// A collection waits for every build holding the gate, and builds that ask
// after it wait for it.
func TestGateBlocks(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	gate := &storegc.Gate{}
	c := s.collector(t, gate, s.paths["top"])
	asked := make(chan struct{}, 10)
	c.Retained = func(context.Context) ([]string, error) {
		asked <- struct{}{} // the collection got the gate
		return []string{s.paths["top"]}, nil
	}

	build, err := gate.Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second, err := gate.Build(ctx) // builds share the gate
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Collect(ctx, 0)
		done <- err
	}()
	select {
	case <-asked:
		t.Fatal("the collection got the gate while builds held it")
	case err := <-done:
		t.Fatalf("the collection ended while builds held the gate: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if got := s.valid(t, "junk0", "old"); !got["junk0"] || !got["old"] {
		t.Fatalf("garbage went while builds held the gate: %v", got)
	}
	// A build asking now waits behind the collection.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := gate.Build(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a build got the gate past a waiting collection: %v", err)
	}
	build()
	build() // releasing twice is harmless
	select {
	case <-asked:
		t.Fatal("the collection got the gate while a build held it")
	case <-time.After(200 * time.Millisecond):
	}
	second()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the collection did not run once the builds released the gate")
	}
	if got := s.valid(t, "junk0", "old", "top"); got["junk0"] || got["old"] || !got["top"] {
		t.Fatalf("after the collection the store holds %v", got)
	}
	// While a collection holds the gate, builds wait; they go on after.
	release, err := gate.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	got := make(chan struct{})
	wg.Go(func() {
		r, err := gate.Build(ctx)
		if err != nil {
			t.Error(err)
			return
		}
		close(got)
		r()
	})
	select {
	case <-got:
		t.Fatal("a build got the gate during a collection")
	case <-time.After(200 * time.Millisecond):
	}
	release()
	wg.Wait()
}

// Run collects at once and again every interval.
func TestRun(t *testing.T) {
	s := newTestStore(t)
	c := s.collector(t, &storegc.Gate{}, s.paths["top"])
	c.Interval, c.Check = time.Hour, 50*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	testenv.Eventually(t, time.Minute, func() bool {
		got := s.valid(t, "junk0", "old", "top")
		return !got["junk0"] && !got["old"] && got["top"]
	}, "the first collection")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
}

// Settings that would collect unsafely are refused.
func TestValidate(t *testing.T) {
	ok := func() *storegc.Collector {
		return &storegc.Collector{Nix: &nix.Client{}, RootDir: "/tmp/x", Gate: &storegc.Gate{},
			Retained: func(context.Context) ([]string, error) { return nil, nil }}
	}
	if err := ok().Validate(); err != nil {
		t.Fatalf("valid collector refused: %v", err)
	}
	for name, mod := range map[string]func(c *storegc.Collector){
		"no gate":            func(c *storegc.Collector) { c.Gate = nil },
		"no roots":           func(c *storegc.Collector) { c.RootDir = "" },
		"no retention":       func(c *storegc.Collector) { c.Retained = nil },
		"max-free under min": func(c *storegc.Collector) { c.MinFree, c.MaxFree = 10, 5 },
		"negative min-free":  func(c *storegc.Collector) { c.MinFree = -1 },
		"negative interval":  func(c *storegc.Collector) { c.Interval = -time.Second },
	} {
		c := ok()
		mod(c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if err := c.Run(context.Background()); err == nil {
			t.Errorf("%s: Run started", name)
		}
	}
}

func TestFreeSpace(t *testing.T) {
	free, err := storegc.FreeSpace(t.TempDir())
	if err != nil || free <= 0 {
		t.Fatalf("FreeSpace = %d, %v", free, err)
	}
	if _, err := storegc.FreeSpace(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("FreeSpace of a missing directory: no error")
	}
}
