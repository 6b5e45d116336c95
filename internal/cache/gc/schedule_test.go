package gc_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/file"
	"github.com/homelab-farm/farm/internal/cache/gc"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/testenv"
)

// fakeMetrics records what a schedule reports.
type fakeMetrics struct {
	mu        sync.Mutex
	collected []int64 // freed objects of each successful run
	failures  []string
}

func (m *fakeMetrics) CacheCollected(_ time.Duration, freedObjects, _, _, _ int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.collected = append(m.collected, freedObjects)
}

func (m *fakeMetrics) Failure(kind string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failures = append(m.failures, kind)
}

// clock is a settable clock ahead of the real one by an offset.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time      { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) add(d time.Duration) { c.offset.Add(int64(d)) }

// scheduleFixture is a file cache with the gc fixture, old enough to
// collect, and a SQLite state in which host alpha is deployed to its root.
func scheduleFixture(t *testing.T) (*fixture, *file.Backend, *state.Store) {
	t.Helper()
	b, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, b)
	backdate(t, b, 2*time.Hour)
	st, err := state.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.SetDesired(context.Background(), "alpha", f.root, "c1", 1, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	return f, b, st
}

func newSchedule(b cache.Backend, key cache.SecretKey, st gc.ScheduleStore, clk *clock, m gc.ScheduleMetrics) *gc.Schedule {
	return &gc.Schedule{
		Collector: &gc.Collector{Backend: b, Trusted: []cache.PublicKey{key.Public()}, Grace: time.Hour, Now: clk.now},
		Store:     st, Retention: gc.Retention{Generations: 5, KeepDays: 14}, Metrics: m, Instance: "b1",
	}
}

func events(t *testing.T, st state.Interface) []state.Event {
	t.Helper()
	evs, err := st.EventsAfter(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []state.Event
	for _, ev := range evs {
		if ev.Type == string(farmapi.CacheCollected) || ev.Type == string(farmapi.CacheCollectionFailed) {
			out = append(out, ev)
		}
	}
	return out
}

// A due run collects with the roots from the state, records the run with
// the bytes of each host's generations, appends an event and updates the
// metrics; the next run is due an interval later, not before.
func TestScheduleCollects(t *testing.T) {
	ctx := context.Background()
	f, b, st := scheduleFixture(t)
	clk := &clock{}
	m := &fakeMetrics{}
	s := newSchedule(b, f.key, st, clk, m)

	c, ran, err := s.RunDue(ctx)
	if err != nil || !ran {
		t.Fatalf("RunDue = %+v, %v, %v; want a run", c, ran, err)
	}
	f.check(t, b)
	if c.ID == 0 || c.Error != "" || c.FreedObjects == 0 || c.KeptPaths != int64(len(f.kept)) || c.CacheObjects != int64(2*len(f.kept)) || c.CacheBytes == 0 {
		t.Errorf("recorded %+v; want the fixture's %d kept paths and their NARs", c, len(f.kept))
	}
	var want state.HostBytes
	want.Host = "alpha"
	for _, p := range f.kept {
		ni, err := cache.ReadNarInfo(ctx, b, p)
		if err != nil {
			t.Fatal(err)
		}
		want.Paths++
		want.NarBytes += int64(ni.NarSize)
		want.FileBytes += int64(ni.FileSize)
	}
	if want.FileBytes == 0 || !slices.Equal(c.Hosts, []state.HostBytes{want}) {
		t.Errorf("host bytes %+v, want %+v", c.Hosts, want)
	}
	h, err := st.CacheHistory(ctx, time.Now().AddDate(0, 0, -28), 10)
	if err != nil || len(h.Last) != 1 || h.Last[0].ID != c.ID || len(h.Sizes) != 1 || h.Sizes[0].Bytes != c.CacheBytes || !slices.Equal(h.Hosts, c.Hosts) {
		t.Fatalf("CacheHistory = %+v, %v; want the run", h, err)
	}
	evs := events(t, st)
	if len(evs) != 1 || evs[0].Type != string(farmapi.CacheCollected) {
		t.Fatalf("events %+v, want one %s", evs, farmapi.CacheCollected)
	}
	var data farmapi.CollectionData
	if err := json.Unmarshal(evs[0].Data, &data); err != nil || data.Collection != c.ID || data.FreedObjects != c.FreedObjects || data.Instance != "b1" {
		t.Errorf("event data %s, %v; want run %d", evs[0].Data, err, c.ID)
	}
	if !slices.Equal(m.collected, []int64{c.FreedObjects}) || len(m.failures) != 0 {
		t.Errorf("metrics %+v, want one collection", m)
	}

	clk.add(23 * time.Hour)
	if _, ran, err := s.RunDue(ctx); err != nil || ran {
		t.Fatalf("RunDue within the interval: ran %v, %v; want no run", ran, err)
	}
	clk.add(time.Hour)
	if c2, ran, err := s.RunDue(ctx); err != nil || !ran || c2.FreedObjects != 0 || c2.KeptPaths != c.KeptPaths {
		t.Fatalf("RunDue a day later = %+v, %v, %v; want a run that frees nothing", c2, ran, err)
	}
}

// A failed run is recorded and reported as failed, and deletes nothing.
func TestScheduleFailure(t *testing.T) {
	ctx := context.Background()
	_, b, st := scheduleFixture(t)
	before := keys(t, b)
	other, err := cache.GenerateKey("someone-else-1")
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeMetrics{}
	s := newSchedule(b, other, st, &clock{}, m) // not the farm's key: not its cache
	c, ran, err := s.RunDue(ctx)
	if !ran || !errors.Is(err, gc.ErrNotFarmCache) || c.ID == 0 || c.Error == "" {
		t.Fatalf("RunDue = %+v, ran %v, %v; want a recorded failure wrapping ErrNotFarmCache", c, ran, err)
	}
	if after := keys(t, b); !slices.Equal(after, before) {
		t.Errorf("a failed run changed the cache: %v, was %v", after, before)
	}
	evs := events(t, st)
	if len(evs) != 1 || evs[0].Type != string(farmapi.CacheCollectionFailed) {
		t.Fatalf("events %+v, want one %s", evs, farmapi.CacheCollectionFailed)
	}
	var data farmapi.CollectionData
	if err := json.Unmarshal(evs[0].Data, &data); err != nil || data.Error != c.Error {
		t.Errorf("event data %s, %v; want error %q", evs[0].Data, err, c.Error)
	}
	if !slices.Equal(m.failures, []string{"gc"}) || len(m.collected) != 0 {
		t.Errorf("metrics %+v, want one gc failure", m)
	}
	h, err := st.CacheHistory(ctx, time.Time{}, 0)
	if err != nil || len(h.Sizes) != 0 || len(h.Last) != 1 || h.Last[0].Error == "" {
		t.Errorf("CacheHistory = %+v, %v; want one failed run and no size", h, err)
	}
}

// A run that meets another collection (a manual one, or another
// instance's) collects nothing, records nothing, and is retried after
// RetryAfter.
func TestScheduleRespectsLease(t *testing.T) {
	ctx := context.Background()
	f, b, st := scheduleFixture(t)
	clk := &clock{}
	live := cache.GCMarker{ID: "other", Started: clk.now(), Beat: 1, BeatAt: clk.now(), StaleAfter: time.Hour}
	if err := cache.WriteGCMarker(ctx, b, cache.GCRunningKey, live); err != nil {
		t.Fatal(err)
	}
	before := keys(t, b)
	m := &fakeMetrics{}
	s := newSchedule(b, f.key, st, clk, m)
	s.RetryAfter = 10 * time.Minute
	start := clk.now()
	if c, ran, err := s.RunDue(ctx); ran || !errors.Is(err, gc.ErrRunning) {
		t.Fatalf("RunDue beside a live collection = %+v, ran %v, %v; want ErrRunning", c, ran, err)
	}
	if after := keys(t, b); !slices.Equal(after, before) {
		t.Errorf("the cache changed: %v, was %v", after, before)
	}
	if h, err := st.CacheHistory(ctx, time.Time{}, 0); err != nil || len(h.Last) != 0 || len(events(t, st)) != 0 || len(m.failures) != 0 {
		t.Errorf("recorded %+v, %v, events %v, failures %v; want nothing", h, err, events(t, st), m.failures)
	}
	due, err := st.NextCollection(ctx)
	if err != nil || due.Before(start.Add(10*time.Minute-time.Second)) || due.After(clk.now().Add(10*time.Minute)) {
		t.Fatalf("next due %v, %v; want in RetryAfter (%v)", due, err, start.Add(10*time.Minute))
	}
	if err := b.Delete(ctx, cache.GCRunningKey); err != nil {
		t.Fatal(err)
	}
	clk.add(10 * time.Minute)
	if _, ran, err := s.RunDue(ctx); err != nil || !ran {
		t.Fatalf("RunDue after the other collection ended: ran %v, %v", ran, err)
	}
	f.check(t, b)
}

// Builders sharing one PostgreSQL and one cache: at each due time exactly
// one of them collects.
func TestScheduleOneOfManyInstances(t *testing.T) {
	ctx := context.Background()
	f, b, _ := scheduleFixture(t)
	_, dsn := testenv.PostgresSchema(t, "gc_schedule")
	clk := &clock{}
	var scheds []*gc.Schedule
	for range 3 {
		st, err := state.OpenPostgres(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		scheds = append(scheds, newSchedule(b, f.key, st, clk, nil))
	}
	if err := scheds[0].Store.(*state.Store).SetDesired(ctx, "alpha", f.root, "c1", 1, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		var ran atomic.Int32
		var wg sync.WaitGroup
		for _, s := range scheds {
			wg.Go(func() {
				_, r, err := s.RunDue(ctx)
				if err != nil {
					t.Error(err)
				}
				if r {
					ran.Add(1)
				}
			})
		}
		wg.Wait()
		if ran.Load() != 1 {
			t.Fatalf("round %d: %d instances collected, want 1", round, ran.Load())
		}
		clk.add(gc.DefaultInterval)
	}
	f.check(t, b)
	h, err := scheds[1].Store.(*state.Store).CacheHistory(ctx, time.Time{}, 0)
	if err != nil || len(h.Last) != 3 {
		t.Fatalf("CacheHistory = %+v, %v; want three runs", h, err)
	}
}

// Run collects on its interval until its context ends.
func TestScheduleRun(t *testing.T) {
	f, b, st := scheduleFixture(t)
	s := newSchedule(b, f.key, st, &clock{}, nil)
	s.Interval, s.Poll = 300*time.Millisecond, 100*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	testenv.Eventually(t, 30*time.Second, func() bool {
		h, err := st.CacheHistory(context.Background(), time.Time{}, 0)
		return err == nil && len(h.Last) >= 2
	}, "two scheduled collections")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	f.check(t, b)
}

// A schedule that could never collect safely is refused before it runs.
func TestScheduleValidate(t *testing.T) {
	b, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := cache.GenerateKey("farm-1")
	st, err := state.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	good := func() *gc.Schedule { return newSchedule(b, key, st, &clock{}, nil) }
	for name, s := range map[string]*gc.Schedule{
		"no collector":   func() *gc.Schedule { s := good(); s.Collector = nil; return s }(),
		"no store":       func() *gc.Schedule { s := good(); s.Store = nil; return s }(),
		"0 generations":  func() *gc.Schedule { s := good(); s.Retention.Generations = 0; return s }(),
		"negative age":   func() *gc.Schedule { s := good(); s.Retention.KeepDays = -1; return s }(),
		"dry run":        func() *gc.Schedule { s := good(); s.Collector.DryRun = true; return s }(),
		"no grace":       func() *gc.Schedule { s := good(); s.Collector.Grace = 0; return s }(),
		"negative every": func() *gc.Schedule { s := good(); s.Interval = -time.Hour; return s }(),
	} {
		if err := s.Run(context.Background()); err == nil {
			t.Errorf("%s: Run started", name)
		}
	}
	if h, err := st.CacheHistory(context.Background(), time.Time{}, 0); err != nil || len(h.Last) != 0 {
		t.Errorf("refused schedules recorded %+v, %v", h, err)
	}
}

// A run cut short by the builder stopping is no failure: nothing is
// recorded or told, and the run is due again at once.
func TestScheduleCancelled(t *testing.T) {
	f, b, st := scheduleFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := &hooked{Backend: b, before: func(op, key string) {
		if op == "get" && strings.HasSuffix(key, ".narinfo") {
			cancel() // while marking
		}
	}}
	clk := &clock{}
	m := &fakeMetrics{}
	s := newSchedule(h, f.key, st, clk, m)
	start := clk.now()
	if _, ran, err := s.RunDue(ctx); !ran || !errors.Is(err, context.Canceled) {
		t.Fatalf("RunDue cut short: ran %v, %v; want context.Canceled", ran, err)
	}
	bg := context.Background()
	if hist, err := st.CacheHistory(bg, time.Time{}, 0); err != nil || len(hist.Last) != 0 || len(events(t, st)) != 0 || len(m.failures) != 0 {
		t.Errorf("a cancelled run was recorded: %+v, %v, events %v, failures %v", hist, err, events(t, st), m.failures)
	}
	if due, err := st.NextCollection(bg); err != nil || due.After(clk.now()) || due.Before(start.Add(-time.Second)) {
		t.Errorf("next due %v, %v; want now (%v)", due, err, start)
	}
	if _, ran, err := s.RunDue(bg); err != nil || !ran {
		t.Fatalf("the next RunDue: ran %v, %v; want the run", ran, err)
	}
	f.check(t, b)
}

// Each host counts the whole closure of its generations, paths shared
// with other hosts included; a path the cache lacks counts nothing.
func TestHostBytes(t *testing.T) {
	ctx := context.Background()
	b, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, b)
	top, mid, leaf := f.kept[0], f.kept[1], f.kept[2]
	size := func(paths ...string) state.HostBytes {
		var hb state.HostBytes
		for _, p := range paths {
			ni, err := cache.ReadNarInfo(ctx, b, p)
			if err != nil {
				t.Fatal(err)
			}
			hb.Paths++
			hb.NarBytes += int64(ni.NarSize)
			hb.FileBytes += int64(ni.FileSize)
		}
		return hb
	}
	alpha, beta := size(top, mid, leaf), size(mid, leaf)
	alpha.Host, beta.Host = "alpha", "beta"
	c := &gc.Collector{Backend: b, Trusted: []cache.PublicKey{f.key.Public()}}
	got, err := c.HostBytes(ctx, map[string][]string{
		"beta":  {mid},
		"alpha": {top, mid},
		"gamma": {cache.StoreDir + "/00000000000000000000000000000000-gone"},
	})
	want := []state.HostBytes{alpha, beta, {Host: "gamma"}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("HostBytes = %+v, %v; want %+v", got, err, want)
	}
	if _, err := c.HostBytes(ctx, map[string][]string{"alpha": {"/etc/passwd"}}); err == nil {
		t.Error("HostBytes of a root that is not a store path: no error")
	}
	other, _ := cache.GenerateKey("someone-else-1")
	c.Trusted = []cache.PublicKey{other.Public()}
	if _, err := c.HostBytes(ctx, map[string][]string{"alpha": {top}}); !errors.Is(err, gc.ErrNotFarmCache) {
		t.Errorf("HostBytes under another key = %v, want ErrNotFarmCache", err)
	}
}
