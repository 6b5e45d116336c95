package storegc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"

	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/safepath"
)

// RootNix is what SyncRoots asks of Nix; *nix.Client is the real one.
type RootNix interface {
	// ValidPaths returns the paths store holds, in the order given.
	ValidPaths(ctx context.Context, store string, paths []string) ([]string, error)
	// AddRoot makes link an (indirect) root of path, valid in store.
	AddRoot(ctx context.Context, store, link, path string) error
}

var _ RootNix = (*nix.Client)(nil)

// SyncResult is what SyncRoots did.
type SyncResult struct {
	Added   int // roots made for retained paths that had none
	Kept    int // links to retained paths left as they were
	Removed int // links to paths no longer retained
	// Absent counts retained paths the store does not hold (built
	// elsewhere, or collected before): nothing to root.
	Absent int
	// Skipped counts retained entries that are not store paths.
	Skipped int
}

// SyncRoots makes dir hold a garbage-collector root for every path of
// retained that store ("" for Nix's default) holds, and no other: a symlink
// in dir to a retained path stays, whatever its name (the pipeline's
// per-host roots); a retained path without one gets a root named by its
// base name; a symlink to any other path is removed (Nix forgets an
// indirect root whose link is gone). Entries that are not symlinks are left
// alone. Roots are added before any is removed, so a retained path is never
// unrooted. Run it while holding the Gate exclusively: a build's fresh root
// may not be retained yet.
func SyncRoots(ctx context.Context, n RootNix, store, dir string, retained []string, log *slog.Logger) (SyncResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var res SyncResult
	want := make(map[string]bool, len(retained))
	var paths []string
	for _, p := range retained {
		if err := nix.ValidateStorePath(p); err != nil {
			res.Skipped++
			log.Warn("a retained closure is not a store path; not rooted", "err", err)
			continue
		}
		if !want[p] {
			want[p] = true
			paths = append(paths, p)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, fmt.Errorf("sync roots: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return res, fmt.Errorf("sync roots: %w", err)
	}
	rooted := make(map[string]bool)
	stale := make(map[string]bool)
	for _, e := range entries {
		if e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		link, err := safepath.Join(dir, e.Name())
		if err != nil {
			return res, fmt.Errorf("sync roots: %w", err)
		}
		target, err := os.Readlink(link)
		if err != nil {
			return res, fmt.Errorf("sync roots: %w", err)
		}
		if want[target] {
			rooted[target] = true
			res.Kept++
		} else {
			stale[link] = true
		}
	}
	valid, err := n.ValidPaths(ctx, store, paths)
	if err != nil {
		return res, fmt.Errorf("sync roots: %w", err)
	}
	res.Absent = len(paths) - len(valid)
	for _, p := range valid {
		if rooted[p] {
			continue
		}
		link, err := safepath.Join(dir, path.Base(p))
		if err != nil {
			return res, fmt.Errorf("sync roots: %w", err)
		}
		if err := n.AddRoot(ctx, store, link, p); err != nil {
			return res, fmt.Errorf("sync roots: %w", err)
		}
		delete(stale, link) // a stale link of that name was replaced
		res.Added++
	}
	for link := range stale {
		if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return res, fmt.Errorf("sync roots: %w", err)
		}
		res.Removed++
	}
	return res, nil
}
