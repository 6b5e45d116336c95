package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/cacheurl"
	"github.com/homelab-farm/farm/internal/cache/gc"
	"github.com/homelab-farm/farm/internal/cli"
	"github.com/homelab-farm/farm/internal/state"
)

// minGrace is the shortest grace period the command accepts: younger
// objects may belong to a push in flight.
const minGrace = time.Minute

func runCacheGC(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("builder cache gc", "BUILDER", getenv, stdout, stderr)
	cacheURL := fs.String("cache", "", "cache `URL`")
	var trusted, roots []string
	fs.StringsVar(&trusted, "trusted-key", cli.Fields, "space-separated", "the farm's public `key` (name:base64); every narinfo must be signed by one; repeatable")
	keyFile := fs.SecretFile("signing-key-file", "the farm's secret key `file`, whose public key is trusted")
	fs.StringsVar(&roots, "root", cli.Fields, "space-separated", "store `path` kept with its closure (a pin); repeatable")
	rootsFrom := fs.String("roots-from", "", "the builder's state `database`: keep each host's deployed and running closures, recent builds and running evaluations")
	generations := fs.Int("generations", gc.DefaultGenerations, "deployed manifests kept per host (the agents' --keep-generations)")
	keepDays := fs.Int("keep-days", gc.DefaultKeepDays, "days every built closure is kept")
	grace := fs.Duration("grace", time.Hour, "nothing younger is deleted, and every narinfo younger is a root")
	dryRun := fs.Bool("dry-run", false, "report what would go, delete nothing")
	index := fs.String("index", "", "a `file` where the collection keeps what it read of each narinfo, so that the next one reads only the narinfos that changed (builder serve keeps one in its state directory)")
	list := fs.Bool("list", false, "print each store path that goes")
	quiet := fs.Bool("quiet", false, "print only the summary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := fs.NoArgs(); err != nil {
		return err
	}
	retention := gc.Retention{Generations: *generations, KeepDays: *keepDays, Pins: roots}
	var errs []error
	if err := retention.Validate(); err != nil {
		errs = append(errs, err)
	}
	if *grace < minGrace {
		errs = append(errs, fmt.Errorf("grace %s: want at least %s (younger objects may belong to a push in flight)", *grace, minGrace))
	}
	keys, err := gcTrustedKeys(trusted, *keyFile, getenv)
	if err != nil {
		errs = append(errs, err)
	}
	if len(roots) == 0 && *rootsFrom == "" {
		errs = append(errs, errors.New("no roots: give --roots-from and/or --root (without roots everything would go)"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cache gc: %w", err)
	}

	now := time.Now()
	var rootPaths []string
	if *rootsFrom != "" {
		fleet, err := stateRoots(ctx, *rootsFrom, retention, now)
		if err != nil {
			return fmt.Errorf("cache gc: %w", err)
		}
		for _, r := range fleet {
			rootPaths = append(rootPaths, r.Path)
		}
	} else {
		rootPaths = roots
	}
	if len(rootPaths) == 0 {
		return fmt.Errorf("cache gc: the state in %s names no closure to keep; refusing to delete everything (add --root)", *rootsFrom)
	}
	backend, err := cacheurl.Open(ctx, *cacheURL, getenv)
	if err != nil {
		return fmt.Errorf("cache gc: %w", err)
	}

	var mu sync.Mutex
	var last gc.Progress
	c := &gc.Collector{
		Backend: backend, Trusted: keys, Grace: *grace, DryRun: *dryRun, Index: *index,
		Log:      slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Progress: func(p gc.Progress) { mu.Lock(); last = p; mu.Unlock() },
	}
	if *list {
		c.Swept = func(p string) { fmt.Fprintln(stdout, p) }
	}
	stopProgress := func() {}
	if !*quiet {
		stopProgress = ticker(time.Second, func() {
			mu.Lock()
			p := last
			mu.Unlock()
			if p.Phase == "" {
				return
			}
			if p.Total > 0 {
				fmt.Fprintf(stderr, "collecting: %s %d/%d\n", p.Phase, p.Done, p.Total)
			} else {
				fmt.Fprintf(stderr, "collecting: %s %d\n", p.Phase, p.Done)
			}
		})
	}
	res, err := c.Collect(ctx, rootPaths)
	stopProgress()
	if err != nil {
		return fmt.Errorf("cache gc: %w", err)
	}
	printGC(stdout, backend.String(), res)
	return nil
}

// gcTrustedKeys parses the trusted keys, or takes the signing key's.
func gcTrustedKeys(trusted []string, keyFile string, getenv func(string) string) ([]cache.PublicKey, error) {
	var keys []cache.PublicKey
	for _, s := range trusted {
		k, err := cache.ParsePublicKey(s)
		if err != nil {
			return nil, fmt.Errorf("trusted key %q: %w", s, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 && keyFile != "" {
		k, err := cache.LoadSecretKeyFile(keyFile)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k.Public())
	}
	if len(keys) == 0 {
		return nil, errors.New("no --trusted-key or --signing-key-file: the farm's key tells its cache")
	}
	return keys, nil
}

// stateRoots computes the fleet's roots from the builder's state database,
// which must exist (opening a missing one would create an empty state that
// keeps nothing).
func stateRoots(ctx context.Context, path string, r gc.Retention, now time.Time) ([]gc.Root, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("roots from %s: %w", path, err)
	}
	st, err := state.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	roots, err := gc.FleetRoots(ctx, st, r, now)
	if err != nil {
		return nil, fmt.Errorf("roots from %s: %w", path, err)
	}
	return roots, nil
}

func printGC(w io.Writer, name string, r *gc.Result) {
	verb := "went"
	if r.DryRun {
		verb = "would go"
		fmt.Fprintf(w, "dry run of %s: nothing deleted\n", name)
	}
	fmt.Fprintf(w, "roots: %d (%d not in the cache); narinfos younger than the grace period: %d\n", r.Roots, r.MissingRoots, r.Young)
	fmt.Fprintf(w, "narinfos: %d kept (%s), %d %s (%s)\n", r.KeptNarInfos.Objects, humanBytes(r.KeptNarInfos.Bytes), r.NarInfos.Objects, verb, humanBytes(r.NarInfos.Bytes))
	fmt.Fprintf(w, "NARs: %d kept (%s), %d %s (%s)\n", r.KeptNars.Objects, humanBytes(r.KeptNars.Bytes), r.Nars.Objects, verb, humanBytes(r.Nars.Bytes))
	fmt.Fprintf(w, "logs: %d %s (%s)\n", r.Logs.Objects, verb, humanBytes(r.Logs.Bytes))
	if r.Dangling > 0 {
		fmt.Fprintf(w, "warning: %d references to paths the cache lacks (run builder cache verify)\n", r.Dangling)
	}
	gone, kept := r.Gone(), r.Kept()
	fmt.Fprintf(w, "total: %d objects kept (%s), %d %s (%s), in %s\n", kept.Objects, humanBytes(kept.Bytes),
		gone.Objects, verb, humanBytes(gone.Bytes), r.Finished.Sub(r.Started).Round(time.Millisecond))
}
