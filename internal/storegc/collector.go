package storegc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"github.com/homelab-farm/farm/internal/cache/gc"
	"github.com/homelab-farm/farm/internal/nix"
)

// Collector defaults.
const (
	DefaultInterval = 24 * time.Hour
	DefaultCheck    = time.Minute
)

// Nix is what a Collector asks of Nix; *nix.Client is the real one.
type Nix interface {
	RootNix
	// CollectGarbage runs nix-store --gc, stopping after maxFreed bytes
	// when maxFreed is above 0.
	CollectGarbage(ctx context.Context, store string, maxFreed int64) (nix.GCResult, error)
}

var _ Nix = (*nix.Client)(nil)

// Metrics receives what store collections measure; *metrics.Metrics is
// the real one.
type Metrics interface {
	StoreCollected(d time.Duration, freedBytes int64)
	StoreFree(bytes int64)
	Failure(kind string)
}

// Collector collects the builder's Nix store: every Interval, and whenever
// the free space of the store's file system is below MinFree (checked
// every Check), until MaxFree is free. Each collection first syncs RootDir
// to the retained closures, all of it while holding Gate exclusively.
type Collector struct {
	Nix Nix
	// Store is the Nix store URI ("" for Nix's default, the builder's).
	Store string
	// StoreDir is the store's directory on disk, whose file system is
	// measured; "" means /nix/store.
	StoreDir string
	// RootDir is the builder's root directory (pipeline.GCRootDir).
	RootDir string
	// Retained returns the closures to keep (see RetainedPaths).
	Retained func(ctx context.Context) ([]string, error)
	Gate     *Gate
	// MinFree starts a collection when fewer bytes are free; 0: never.
	MinFree int64
	// MaxFree is how many bytes such a collection frees up to; 0: all
	// garbage. As in Nix, it is above MinFree.
	MaxFree int64
	// Interval between full collections; 0 means DefaultInterval.
	Interval time.Duration
	// Check is how often the free space is measured; 0 means DefaultCheck.
	Check time.Duration
	// FreeSpace returns the bytes free to unprivileged users on dir's file
	// system; nil measures it (statfs).
	FreeSpace func(dir string) (int64, error)
	Metrics   Metrics
	Log       *slog.Logger
}

// Result is one store collection.
type Result struct {
	Roots    SyncResult
	GC       nix.GCResult
	MaxFreed int64 // 0: all garbage
	// Free is the free space before and after (0 when not measured).
	FreeBefore, FreeAfter int64
	Duration              time.Duration
}

// Validate checks the settings.
func (c *Collector) Validate() error {
	var errs []error
	if c.Nix == nil {
		errs = append(errs, errors.New("no nix"))
	}
	if c.RootDir == "" {
		errs = append(errs, errors.New("no root directory"))
	}
	if c.Retained == nil {
		errs = append(errs, errors.New("no retained closures"))
	}
	if c.Gate == nil {
		errs = append(errs, errors.New("no gate: collections would run during builds"))
	}
	if c.MinFree < 0 || c.MaxFree < 0 {
		errs = append(errs, fmt.Errorf("min-free %d, max-free %d: want zero or more", c.MinFree, c.MaxFree))
	}
	if c.MaxFree > 0 && c.MaxFree <= c.MinFree {
		errs = append(errs, fmt.Errorf("max-free %d is not above min-free %d", c.MaxFree, c.MinFree))
	}
	if c.Interval < 0 || c.Check < 0 {
		errs = append(errs, fmt.Errorf("interval %s, check %s: want zero or more", c.Interval, c.Check))
	}
	return errors.Join(errs...)
}

func (c *Collector) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (c *Collector) storeDir() string {
	if c.StoreDir != "" {
		return c.StoreDir
	}
	return nix.StoreDir
}

func (c *Collector) free() (int64, error) {
	if c.FreeSpace != nil {
		return c.FreeSpace(c.storeDir())
	}
	return FreeSpace(c.storeDir())
}

// FreeSpace returns the bytes free to unprivileged users on dir's file
// system.
func FreeSpace(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// Run collects at once, then every Interval, and whenever the free space
// falls below MinFree, until ctx ends; it returns ctx's error, or a
// validation error at once. Failed collections are logged and counted, not
// returned.
func (c *Collector) Run(ctx context.Context) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("store collector: %w", err)
	}
	interval, check := DefaultInterval, DefaultCheck
	if c.Interval > 0 {
		interval = c.Interval
	}
	if c.Check > 0 {
		check = c.Check
	}
	var last time.Time
	for {
		if time.Since(last) >= interval {
			last = time.Now()
			c.logResult(c.Collect(ctx, 0))
		} else if c.MinFree > 0 {
			if res, ran, err := c.CheckSpace(ctx); ran || err != nil {
				c.logResult(res, err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(check, max(interval-time.Since(last), time.Millisecond))):
		}
	}
}

func (c *Collector) logResult(res Result, err error) {
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			c.log().Warn("store collection", "err", err)
		}
		return
	}
	c.log().Info("store collected", "paths", res.GC.Paths, "freed_bytes", res.GC.Bytes, "max_freed", res.MaxFreed,
		"roots_added", res.Roots.Added, "roots_removed", res.Roots.Removed, "free_after", res.FreeAfter, "took", res.Duration)
}

// CheckSpace collects when the free space is below MinFree, freeing up to
// MaxFree minus what is free (everything when MaxFree is 0), and reports
// whether it did.
func (c *Collector) CheckSpace(ctx context.Context) (Result, bool, error) {
	free, err := c.free()
	if err != nil {
		return Result{}, false, err
	}
	if c.Metrics != nil {
		c.Metrics.StoreFree(free)
	}
	if c.MinFree <= 0 || free >= c.MinFree {
		return Result{}, false, nil
	}
	var maxFreed int64
	if c.MaxFree > 0 {
		maxFreed = c.MaxFree - free
	}
	res, err := c.Collect(ctx, maxFreed)
	return res, true, err
}

// Collect waits for the builds holding the gate, then syncs the roots to
// the retained closures and collects the store's garbage, freeing at most
// maxFreed bytes when it is above 0.
func (c *Collector) Collect(ctx context.Context, maxFreed int64) (Result, error) {
	if err := c.Validate(); err != nil {
		return Result{}, fmt.Errorf("collect store: %w", err)
	}
	res := Result{MaxFreed: maxFreed}
	err := c.collect(ctx, &res)
	if c.Metrics != nil {
		if err != nil {
			c.Metrics.Failure("store-gc")
		} else {
			c.Metrics.StoreCollected(res.Duration, res.GC.Bytes)
			if res.FreeAfter > 0 {
				c.Metrics.StoreFree(res.FreeAfter)
			}
		}
	}
	if err != nil {
		return res, fmt.Errorf("collect store: %w", err)
	}
	return res, nil
}

func (c *Collector) collect(ctx context.Context, res *Result) error {
	release, err := c.Gate.Collect(ctx)
	if err != nil {
		return err
	}
	defer release()
	start := time.Now()
	// Asked only now: what builds finished while this waited is retained.
	retained, err := c.Retained(ctx)
	if err != nil {
		return fmt.Errorf("retained closures: %w", err)
	}
	if res.FreeBefore, err = c.free(); err != nil {
		c.log().Warn("store collection", "err", err)
	}
	if res.Roots, err = SyncRoots(ctx, c.Nix, c.Store, c.RootDir, retained, c.log()); err != nil {
		return err
	}
	if res.GC, err = c.Nix.CollectGarbage(ctx, c.Store, res.MaxFreed); err != nil {
		return err
	}
	res.Duration = time.Since(start)
	res.FreeAfter, _ = c.free()
	return nil
}

// RetainedPaths returns the closures r keeps of what src knows at now:
// the roots of the binary cache's collection (gc.FleetRoots).
func RetainedPaths(ctx context.Context, src gc.RootSource, r gc.Retention, now time.Time) ([]string, error) {
	roots, err := gc.FleetRoots(ctx, src, r, now)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(roots))
	for i, root := range roots {
		out[i] = root.Path
	}
	return out, nil
}
