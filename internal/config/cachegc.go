package config

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Retention and collection defaults. DefaultKeepGenerations is the agents'
// keep-N: every host can still fetch each generation it may roll back to.
const (
	DefaultCollectInterval  = 24 * time.Hour
	DefaultKeepGenerations  = 5
	DefaultKeepDays         = 14
	DefaultCollectGrace     = time.Hour
	DefaultStoreGCInterval  = 24 * time.Hour
	minCollectGrace         = time.Minute
	storePathPrefix         = "/nix/store/"
	storePathHashCharacters = 32
)

// CacheGC is the [cache_gc] section: the retention of the binary cache and
// its scheduled collection inside `builder serve`.
type CacheGC struct {
	// Interval between scheduled collections; 0 turns them off. Unset:
	// DefaultCollectInterval.
	Interval *Duration `toml:"interval"`
	// Generations is how many deployed manifests of each host are kept.
	Generations *int `toml:"generations"`
	// KeepDays is how many days every built closure is kept.
	KeepDays *int `toml:"keep_days"`
	// Grace protects objects younger than it (a push in flight).
	Grace Duration `toml:"grace"`
	// Pins are store paths kept whatever the fleet does.
	Pins []string `toml:"pins"`
}

// StoreGC is the [store_gc] section: the collection of the builder's own
// Nix store, with Nix's min-free/max-free semantics.
type StoreGC struct {
	// Interval between full collections; 0 turns them off (min_free still
	// applies). Unset: DefaultStoreGCInterval.
	Interval *Duration `toml:"interval"`
	// MinFree starts a collection when fewer bytes are free; 0: never.
	MinFree int64 `toml:"min_free"`
	// MaxFree is how many bytes such a collection frees up to; 0: all
	// garbage. Above MinFree.
	MaxFree int64 `toml:"max_free"`
}

// CollectInterval is the scheduled collection's interval; 0 means off.
func (g CacheGC) CollectInterval() time.Duration {
	if g.Interval == nil {
		return DefaultCollectInterval
	}
	return g.Interval.Duration
}

// KeepGenerations is how many deployed generations of each host are kept.
func (g CacheGC) KeepGenerations() int {
	if g.Generations == nil {
		return DefaultKeepGenerations
	}
	return *g.Generations
}

// Days is how many days every built closure is kept.
func (g CacheGC) Days() int {
	if g.KeepDays == nil {
		return DefaultKeepDays
	}
	return *g.KeepDays
}

// GracePeriod is the grace period of scheduled collections.
func (g CacheGC) GracePeriod() time.Duration {
	if g.Grace.Duration == 0 {
		return DefaultCollectGrace
	}
	return g.Grace.Duration
}

// CollectInterval is the interval of full store collections; 0 means off.
func (s StoreGC) CollectInterval() time.Duration {
	if s.Interval == nil {
		return DefaultStoreGCInterval
	}
	return s.Interval.Duration
}

// validate checks the section; each error names its key.
func (g CacheGC) validate() error {
	var errs []error
	if d := g.CollectInterval(); d < 0 {
		errs = append(errs, fmt.Errorf("cache_gc.interval %s: want 0 (off) or more", d))
	}
	if n := g.KeepGenerations(); n < 1 {
		errs = append(errs, fmt.Errorf("cache_gc.generations %d: want at least 1 (hosts roll back to what the cache keeps)", n))
	}
	if n := g.Days(); n < 0 {
		errs = append(errs, fmt.Errorf("cache_gc.keep_days %d: want 0 or more", n))
	}
	if d := g.Grace.Duration; d != 0 && d < minCollectGrace {
		errs = append(errs, fmt.Errorf("cache_gc.grace %s: want at least %s (younger objects may belong to a push in flight)", d, minCollectGrace))
	}
	for _, p := range g.Pins {
		if !isStorePath(p) {
			errs = append(errs, fmt.Errorf("cache_gc.pins: %q is not a store path", p))
		}
	}
	return errors.Join(errs...)
}

func (s StoreGC) validate() error {
	var errs []error
	if d := s.CollectInterval(); d < 0 {
		errs = append(errs, fmt.Errorf("store_gc.interval %s: want 0 (off) or more", d))
	}
	if s.MinFree < 0 || s.MaxFree < 0 {
		errs = append(errs, fmt.Errorf("store_gc.min_free %d, max_free %d: want 0 or more", s.MinFree, s.MaxFree))
	} else if s.MaxFree > 0 && s.MaxFree <= s.MinFree {
		errs = append(errs, fmt.Errorf("store_gc.max_free %d is not above min_free %d", s.MaxFree, s.MinFree))
	}
	return errors.Join(errs...)
}

// isStorePath reports whether p is /nix/store/<32-character hash>-<name>
// with nothing after the name.
func isStorePath(p string) bool {
	rest, ok := strings.CutPrefix(p, storePathPrefix)
	if !ok || len(rest) < storePathHashCharacters+2 || rest[storePathHashCharacters] != '-' || strings.Contains(rest, "/") {
		return false
	}
	for _, c := range rest[:storePathHashCharacters] {
		if !strings.ContainsRune("0123456789abcdfghijklmnpqrsvwxyz", c) {
			return false
		}
	}
	return true
}
