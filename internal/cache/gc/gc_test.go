package gc_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/file"
	"github.com/homelab-farm/farm/internal/cache/gc"
	"github.com/homelab-farm/farm/internal/testenv/miniotest"
)

func TestMain(m *testing.M) {
	if os.Getenv(envCrashURL) != "" {
		crashHelper()
		return
	}
	if os.Getenv(envBenchURL) != "" {
		benchHelper()
		return
	}
	miniotest.Main(m)
}

// fixture is a cache holding a kept closure and garbage around it.
type fixture struct {
	store      *fakeStore
	key        cache.SecretKey
	root       string
	kept, gone []string // store paths
	keptNars   []string // NAR keys that must stay (one shared with garbage)
	goneNars   []string
	keptLogs   []string
	goneLogs   []string
}

func narKey(t testing.TB, b cache.Backend, p string) string {
	t.Helper()
	ni, err := cache.ReadNarInfo(context.Background(), b, p)
	if err != nil {
		t.Fatal(err)
	}
	return ni.URL
}

// newFixture pushes, to b:
//
//	kept:    top -> mid -> leaf                (the root is top)
//	garbage: g2 -> g1 -> g0, g1 -> leaf        (a chain onto a kept path)
//	         twin: same contents as leaf       (its NAR is leaf's: stays)
//	         pairA, pairB: same contents       (their one NAR goes)
//	         sibling: shares mid's derivation  (the log stays)
//
// with logs for top, g1, g2 and sibling.
func newFixture(t testing.TB, b cache.Backend) *fixture {
	t.Helper()
	s := newFakeStore(t)
	key, err := cache.GenerateKey("farm-gc-1")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: s, key: key}
	leafBody := []byte("the leaf's contents")
	leaf := s.addContent(t, cache.StoreDir+"/"+strings.Repeat("0", 31)+"1-leaf", leafBody)
	mid := s.add(t, "mid", 3000, leaf)
	top := s.add(t, "top", 100, mid, leaf)
	g0 := s.add(t, "g0", 50)
	g1 := s.add(t, "g1", 60, g0, leaf)
	g2 := s.add(t, "g2", 70, g1)
	twin := s.addContent(t, cache.StoreDir+"/"+strings.Repeat("0", 31)+"2-twin", leafBody)
	pairBody := []byte("a pair's contents")
	pairA := s.addContent(t, cache.StoreDir+"/"+strings.Repeat("0", 31)+"3-pair", pairBody)
	pairB := s.addContent(t, cache.StoreDir+"/"+strings.Repeat("0", 31)+"4-pair", pairBody)
	sibling := s.add(t, "sibling", 10)
	s.mu.Lock()
	pi := s.infos[sibling]
	pi.Deriver = s.infos[mid].Deriver
	s.infos[sibling] = pi
	s.mu.Unlock()

	push(t, b, key, s, top, g2, twin, pairA, pairB, sibling)
	f.root = top
	f.kept = []string{top, mid, leaf}
	f.gone = []string{g2, g1, g0, twin, pairA, pairB, sibling}
	f.keptNars = []string{narKey(t, b, top), narKey(t, b, mid), narKey(t, b, leaf)}
	if narKey(t, b, twin) != narKey(t, b, leaf) {
		t.Fatal("twin and leaf do not share a NAR")
	}
	f.goneNars = []string{narKey(t, b, g2), narKey(t, b, g1), narKey(t, b, g0), narKey(t, b, pairA), narKey(t, b, sibling)}
	f.keptLogs = []string{putLog(t, b, s, top), putLog(t, b, s, sibling)} // sibling's is mid's
	f.goneLogs = []string{putLog(t, b, s, g1), putLog(t, b, s, g2)}
	return f
}

// check fails unless exactly what should stay stayed.
func (f *fixture) check(t testing.TB, b cache.Backend) {
	t.Helper()
	for _, p := range f.kept {
		if !has(t, b, cache.NarInfoKey(p)) {
			t.Errorf("kept path %s is gone", p)
		}
	}
	for _, p := range f.gone {
		if has(t, b, cache.NarInfoKey(p)) {
			t.Errorf("garbage path %s is still there", p)
		}
	}
	for _, k := range append(append([]string(nil), f.keptNars...), f.keptLogs...) {
		if !has(t, b, k) {
			t.Errorf("%s is gone, want it kept", k)
		}
	}
	for _, k := range append(append([]string(nil), f.goneNars...), f.goneLogs...) {
		if has(t, b, k) {
			t.Errorf("%s is still there, want it gone", k)
		}
	}
	verify(t, b, f.key, "after the collection")
}

func TestCollect(t *testing.T) {
	for _, bc := range []backendCase{fileCase(), s3Case()} {
		t.Run(bc.name, func(t *testing.T) {
			ctx := context.Background()
			b := bc.open(t)
			f := newFixture(t, b)
			before := keys(t, b)
			var swept []string
			var phases []string
			c := &gc.Collector{Backend: b, Trusted: []cache.PublicKey{f.key.Public()}, DryRun: true,
				Swept: func(p string) { swept = append(swept, p) },
				Progress: func(p gc.Progress) {
					if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
						phases = append(phases, p.Phase)
					}
				}}
			dry, err := c.Collect(ctx, []string{f.root})
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}
			if after := keys(t, b); !slices.Equal(after, before) {
				t.Fatalf("the dry run changed the cache:\nbefore %v\nafter  %v", before, after)
			}
			slices.Sort(swept)
			want := slices.Sorted(slices.Values(f.gone))
			if !slices.Equal(swept, want) {
				t.Errorf("dry run would sweep %v, want %v", swept, want)
			}
			if got, want := fmt.Sprint(phases), "[mark scan narinfos nars logs]"; got != want {
				t.Errorf("progress phases %s, want %s", got, want)
			}
			if dry.NarInfos.Objects != len(f.gone) || dry.KeptNarInfos.Objects != len(f.kept) ||
				dry.Nars.Objects != len(f.goneNars) || dry.KeptNars.Objects != len(f.keptNars) || dry.Logs.Objects != len(f.goneLogs) {
				t.Errorf("dry run counts %+v, want %d/%d narinfos, %d/%d NARs, %d logs going/staying",
					dry, len(f.gone), len(f.kept), len(f.goneNars), len(f.keptNars), len(f.goneLogs))
			}
			if dry.Gone().Bytes <= 0 || dry.Kept().Bytes <= 0 {
				t.Errorf("dry run bytes gone %d, kept %d; want both positive", dry.Gone().Bytes, dry.Kept().Bytes)
			}

			c.DryRun, c.Swept, c.Progress = false, nil, nil
			res, err := c.Collect(ctx, []string{f.root, f.store.add(t, "not-in-cache", 1)})
			if err != nil {
				t.Fatalf("collect: %v", err)
			}
			f.check(t, b)
			if res.NarInfos != dry.NarInfos || res.Nars != dry.Nars || res.Logs != dry.Logs || res.KeptNars != dry.KeptNars {
				t.Errorf("collection %+v differs from its dry run %+v", res, dry)
			}
			if res.MissingRoots != 1 || res.Dangling != 0 {
				t.Errorf("missing roots %d, dangling %d; want 1, 0", res.MissingRoots, res.Dangling)
			}
			if has(t, b, cache.GCRunningKey) || !has(t, b, cache.GCLastKey) {
				t.Errorf("after a collection: gc/running there %v, gc/last there %v; want false, true",
					has(t, b, cache.GCRunningKey), has(t, b, cache.GCLastKey))
			}
			again, err := c.Collect(ctx, []string{f.root})
			if err != nil || again.Gone().Objects != 0 {
				t.Errorf("a second collection = %+v, %v; want nothing gone", again, err)
			}
		})
	}
}

// TestGrace: young narinfos are roots, young NARs stay even without a
// narinfo (a push in flight), old orphans go.
func TestGrace(t *testing.T) {
	ctx := context.Background()
	b, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := newFakeStore(t)
	key, _ := cache.GenerateKey("farm-gc-1")
	old := s.add(t, "old", 10)
	oldGarbage := s.add(t, "old-garbage", 10)
	push(t, b, key, s, old, oldGarbage)
	orphan := "nar/" + strings.Repeat("1", 52) + ".nar.zst"
	if err := b.Put(ctx, orphan, strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	backdate(t, b, 2*time.Hour)
	young := s.add(t, "young", 10, old)
	push(t, b, key, s, young)
	inFlight := "nar/" + strings.Repeat("2", 52) + ".nar.zst"
	if err := b.Put(ctx, inFlight, strings.NewReader("y"), 1); err != nil {
		t.Fatal(err)
	}
	c := &gc.Collector{Backend: b, Trusted: []cache.PublicKey{key.Public()}, Grace: time.Hour}
	res, err := c.Collect(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]bool{
		cache.NarInfoKey(young): true, cache.NarInfoKey(old): true, cache.NarInfoKey(oldGarbage): false,
		orphan: false, inFlight: true,
	} {
		if got := has(t, b, k); got != want {
			t.Errorf("%s there: %v, want %v", k, got, want)
		}
	}
	if res.Young != 1 {
		t.Errorf("young narinfos %d, want 1", res.Young)
	}
	verify(t, b, key, "after the collection")
}

// TestRefuses: bad input is a clear error and nothing is deleted.
func TestRefuses(t *testing.T) {
	ctx := context.Background()
	other, _ := cache.GenerateKey("farm-gc-1") // same name, other key
	cases := []struct {
		name  string
		setup func(t *testing.T, b *file.Backend, f *fixture) *gc.Collector
		roots []string
		want  error
		msg   string
	}{
		{"negative grace", func(t *testing.T, b *file.Backend, f *fixture) *gc.Collector {
			return &gc.Collector{Backend: b, Trusted: []cache.PublicKey{f.key.Public()}, Grace: -time.Hour}
		}, nil, nil, "grace period -1h0m0s"},
		{"no trusted key", func(t *testing.T, b *file.Backend, f *fixture) *gc.Collector {
			return &gc.Collector{Backend: b}
		}, nil, nil, "no trusted key"},
		{"root not a store path", func(t *testing.T, b *file.Backend, f *fixture) *gc.Collector {
			return &gc.Collector{Backend: b, Trusted: []cache.PublicKey{f.key.Public()}}
		}, []string{"/etc/passwd"}, nil, "not a store path"},
		{"another key's cache", func(t *testing.T, b *file.Backend, f *fixture) *gc.Collector {
			return &gc.Collector{Backend: b, Trusted: []cache.PublicKey{other.Public()}}
		}, nil, gc.ErrNotFarmCache, "not signed by a trusted key"},
		{"no nix-cache-info", func(t *testing.T, b *file.Backend, f *fixture) *gc.Collector {
			if err := b.Delete(ctx, "nix-cache-info"); err != nil {
				t.Fatal(err)
			}
			return &gc.Collector{Backend: b, Trusted: []cache.PublicKey{f.key.Public()}}
		}, nil, gc.ErrNotFarmCache, "no nix-cache-info"},
		{"another store", func(t *testing.T, b *file.Backend, f *fixture) *gc.Collector {
			if err := b.Put(ctx, "nix-cache-info", strings.NewReader("StoreDir: /gnu/store\n"), -1); err != nil {
				t.Fatal(err)
			}
			return &gc.Collector{Backend: b, Trusted: []cache.PublicKey{f.key.Public()}}
		}, nil, gc.ErrNotFarmCache, "/gnu/store"},
		{"a live collection", func(t *testing.T, b *file.Backend, f *fixture) *gc.Collector {
			m := cache.GCMarker{ID: "other", Started: time.Now(), Beat: 3, BeatAt: time.Now(), StaleAfter: time.Minute}
			if err := cache.WriteGCMarker(ctx, b, cache.GCRunningKey, m); err != nil {
				t.Fatal(err)
			}
			return &gc.Collector{Backend: b, Trusted: []cache.PublicKey{f.key.Public()}}
		}, nil, gc.ErrRunning, "other"},
		{"a corrupt narinfo", func(t *testing.T, b *file.Backend, f *fixture) *gc.Collector {
			if err := b.Put(ctx, cache.NarInfoKey(f.gone[0]), strings.NewReader("StorePath: nonsense\n"), -1); err != nil {
				t.Fatal(err)
			}
			return &gc.Collector{Backend: b, Trusted: []cache.PublicKey{f.key.Public()}}
		}, nil, nil, "malformed narinfo"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := file.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			f := newFixture(t, b)
			c := tc.setup(t, b, f)
			before := keys(t, b)
			_, err = c.Collect(ctx, tc.roots)
			if err == nil {
				t.Fatal("Collect succeeded, want an error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
			after := keys(t, b)
			if !slices.Equal(before, after) {
				t.Errorf("the refused collection changed the cache:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// TestStaleMarker: a collection takes over from one that died.
func TestStaleMarker(t *testing.T) {
	ctx := context.Background()
	b, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, b)
	dead := cache.GCMarker{ID: "dead", Started: time.Now().Add(-time.Hour), Beat: 7,
		BeatAt: time.Now().Add(-10 * time.Minute), StaleAfter: time.Minute}
	if err := cache.WriteGCMarker(ctx, b, cache.GCRunningKey, dead); err != nil {
		t.Fatal(err)
	}
	c := &gc.Collector{Backend: b, Trusted: []cache.PublicKey{f.key.Public()}}
	if _, err := c.Collect(ctx, []string{f.root}); err != nil {
		t.Fatalf("collect after a dead collection: %v", err)
	}
	f.check(t, b)
	st, err := cache.ReadGCState(ctx, b, time.Now())
	if err != nil || st.Running != nil || st.Last == nil || st.Last.ID == "dead" {
		t.Errorf("markers after the collection: %+v, %v; want no running, a new last", st, err)
	}
}

// TestLeaseLost: a collector whose heartbeat cannot be written stops
// deleting before pushers could take it for dead.
func TestLeaseLost(t *testing.T) {
	ctx := context.Background()
	fb, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, fb)
	before := keys(t, fb)
	var mu sync.Mutex
	clock := time.Now()
	b := &hooked{Backend: fb, before: func(op, key string) {
		if op == "get" && strings.HasSuffix(key, ".narinfo") {
			mu.Lock()
			clock = clock.Add(time.Hour) // the collector is paused, its heartbeat late
			mu.Unlock()
		}
	}}
	c := &gc.Collector{Backend: b, Trusted: []cache.PublicKey{f.key.Public()}, StaleAfter: time.Minute,
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }}
	_, err = c.Collect(ctx, []string{f.root})
	if !errors.Is(err, gc.ErrLeaseLost) {
		t.Fatalf("Collect = %v, want ErrLeaseLost", err)
	}
	var gone []string
	for _, k := range before {
		if !has(t, fb, k) {
			gone = append(gone, k)
		}
	}
	if len(gone) != 0 {
		t.Errorf("a collector without its lease deleted %v", gone)
	}
	verify(t, fb, f.key, "after a lost lease")
	if has(t, fb, cache.GCRunningKey) || has(t, fb, cache.GCLastKey) {
		t.Errorf("a collection that deleted nothing left its markers")
	}
}
