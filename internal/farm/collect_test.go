package farm

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv"
)

// TestFarmScheduledCacheCollection: with a short [cache_gc] interval the
// builder collects its cache on schedule (the first run one interval after
// its first start): the run is recorded in the state, a cache.collected
// event appended, the metrics updated, and an old NAR no narinfo refers to
// is gone while a young one stays (grace).
func TestFarmScheduledCacheCollection(t *testing.T) {
	t.Parallel()
	state := filepath.Join(t.TempDir(), "state")
	cfg := loadConfig(t, "", state)
	cfg.CacheGC.Interval = &config.Duration{Duration: 2 * time.Second}
	off := config.Duration{}
	cfg.StoreGC.Interval = &off
	cacheDir := filepath.Join(state, "cache")
	old := filepath.Join(cacheDir, "nar", strings.Repeat("1", 52)+".nar.zst")
	young := filepath.Join(cacheDir, "nar", strings.Repeat("2", 52)+".nar.zst")
	for file, body := range map[string]string{
		filepath.Join(cacheDir, "nix-cache-info"): "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n",
		old: "an old nar no narinfo refers to", young: "a young nar (maybe a push in flight)",
	} {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-3 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	base, f, logs := start(t, cfg, Options{})
	ctx := context.Background()
	testenv.Eventually(t, time.Minute, func() bool {
		h, err := f.state.CacheHistory(ctx, time.Time{}, 10)
		return err == nil && len(h.Last) > 0
	}, "no collection recorded\n%s", logs)
	h, err := f.state.CacheHistory(ctx, time.Time{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	// The first collection; under load, the next (2 s on) may have run too.
	c := h.Last[len(h.Last)-1] // newest first
	if c.Error != "" || c.FreedObjects != 1 || c.FreedBytes != int64(len("an old nar no narinfo refers to")) {
		t.Fatalf("collection = %+v, want one old NAR freed, no error\n%s", c, logs)
	}
	if c.Started.Before(started.Add(time.Second)) {
		t.Errorf("first collection started %s after the farm, want one interval (2s) later", c.Started.Sub(started))
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old garbage NAR: %v, want gone", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("young NAR: %v, want kept (grace)", err)
	}
	// The event and the metrics follow the record of the collection.
	collected := func() bool {
		events, err := f.state.EventsAfter(ctx, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if e.Type != string(farmapi.CacheCollected) {
				continue
			}
			var d farmapi.CollectionData
			if err := json.Unmarshal(e.Data, &d); err != nil {
				t.Fatal(err)
			}
			if d.Collection == c.ID && d.FreedObjects == 1 {
				return true
			}
		}
		return false
	}
	testenv.Eventually(t, 30*time.Second, collected, "no cache.collected event for collection %d", c.ID)
	testenv.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(body), "farm_cache_gc_freed_objects_total 1")
	}, "metrics lack farm_cache_gc_freed_objects_total 1")
}

// storeNix stands in for Nix in the store collector: it records the
// collections asked for and roots nothing (the state retains nothing).
type storeNix struct {
	mu  sync.Mutex
	gcs int
}

func (n *storeNix) ValidPaths(_ context.Context, _ string, paths []string) ([]string, error) {
	return paths, nil
}

func (n *storeNix) AddRoot(context.Context, string, string, string) error {
	return errors.New("no roots in this test")
}

func (n *storeNix) CollectGarbage(context.Context, string, int64) (nix.GCResult, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.gcs++
	return nix.GCResult{}, nil
}

func (n *storeNix) collections() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.gcs
}

// TestFarmStoreCollectorRunsWithRun: the store collector runs on its
// interval while Run runs, and no collection starts once Run returned.
func TestFarmStoreCollectorRunsWithRun(t *testing.T) {
	t.Parallel()
	cfg := loadConfig(t, "", filepath.Join(t.TempDir(), "state"))
	cfg.StoreGC.Interval = &config.Duration{Duration: 100 * time.Millisecond}
	off := config.Duration{}
	cfg.CacheGC.Interval = &off
	n := &storeNix{}
	logs := &testenv.Buffer{}
	f, err := Open(context.Background(), cfg, Options{Log: slog.New(slog.NewTextHandler(logs, nil)), StoreNix: n})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := n.collections(); got != 0 {
		t.Fatalf("%d store collections before Run", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- f.Run(ctx, listen(t)) }()
	testenv.Eventually(t, time.Minute, func() bool { return n.collections() >= 2 }, "store collector did not run twice\n%s", logs)
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	after := n.collections()
	time.Sleep(500 * time.Millisecond)
	if got := n.collections(); got != after {
		t.Errorf("store collections went on after Run returned: %d, then %d", after, got)
	}
}
