package farm

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/gc"
	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/metrics"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/storegc"
)

// never stands for an interval that is off: a hundred years.
const never = 100 * 365 * 24 * time.Hour

// collectors are the farm's garbage collectors: the scheduled collection
// of the binary cache and the collection of the builder's own store. nil
// fields are off.
type collectors struct {
	cache *gc.Schedule
	store *storegc.Collector
	// firstCache is how long after the farm's first start the first
	// scheduled cache collection runs.
	firstCache time.Duration
}

// retention is the fleet retention of cfg.
func retention(cfg *config.Config) gc.Retention {
	return gc.Retention{Generations: cfg.CacheGC.KeepGenerations(), KeepDays: cfg.CacheGC.Days(), Pins: cfg.CacheGC.Pins}
}

// newCollectors makes the collectors cfg turns on. Builds hold gate while
// they run; the store collector holds it exclusively.
func newCollectors(cfg *config.Config, backend cache.Backend, key cache.SecretKey, st *state.Store,
	n storegc.Nix, rootDir string, gate *storegc.Gate, m *metrics.Metrics, log *slog.Logger) collectors {
	var c collectors
	r := retention(cfg)
	if every := cfg.CacheGC.CollectInterval(); every > 0 {
		instance, _ := os.Hostname()
		c.cache = &gc.Schedule{
			Collector: &gc.Collector{Backend: backend, Trusted: []cache.PublicKey{key.Public()}, Grace: cfg.CacheGC.GracePeriod(), Log: log,
				Index: filepath.Join(cfg.StateDir, "cache-gc.index")},
			Store: st, Retention: r, Metrics: m, Instance: instance, Interval: every, Log: log,
		}
		c.firstCache = every
	}
	storeEvery := cfg.StoreGC.CollectInterval()
	if storeEvery > 0 || cfg.StoreGC.MinFree > 0 {
		if storeEvery == 0 {
			storeEvery = never
		}
		c.store = &storegc.Collector{
			Nix: n, RootDir: rootDir, Gate: gate, MinFree: cfg.StoreGC.MinFree, MaxFree: cfg.StoreGC.MaxFree,
			Interval: storeEvery, Last: time.Now(), Metrics: m, Log: log,
			Retained: func(ctx context.Context) ([]string, error) {
				return storegc.RetainedPaths(ctx, st, r, time.Now())
			},
		}
	}
	return c
}

// runCache runs the scheduled cache collection until ctx ends. On a state
// that never scheduled one, the first is due one interval from now: a new
// builder's state does not know the fleet yet, and its roots would keep
// nothing of a cache it did not fill.
func (c collectors) runCache(ctx context.Context, log *slog.Logger) {
	if c.cache == nil {
		return
	}
	if due, err := c.cache.Store.NextCollection(ctx); err != nil {
		log.Warn("cache collection schedule", logErr, err)
	} else if due.IsZero() {
		if err := c.cache.Store.PostponeCollection(ctx, time.Now().Add(c.firstCache)); err != nil {
			log.Warn("cache collection schedule", logErr, err)
		}
	}
	if err := c.cache.Run(ctx); err != nil && ctx.Err() == nil {
		log.Error("cache collection schedule stopped", logErr, err)
	}
}

// runStore runs the store collector until ctx ends.
func (c collectors) runStore(ctx context.Context, log *slog.Logger) {
	if c.store == nil {
		return
	}
	if err := c.store.Run(ctx); err != nil && ctx.Err() == nil {
		log.Error("store collector stopped", logErr, err)
	}
}
