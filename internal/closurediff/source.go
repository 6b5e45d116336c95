package closurediff

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/parallel"
)

// Store is the local Nix store a closure is read from; *nix.Client
// implements it (reading the store's database directly when it can).
// ClosureSizes returns every path of root's closure with its NAR size, and
// an error wrapping nix.ErrNotInStore when the store lacks root.
type Store interface {
	ClosureSizes(ctx context.Context, root string) (map[string]uint64, error)
}

var _ Store = (*nix.Client)(nil)

// FromStore reads the closure of root from the local store. Its paths have
// no FileSize (see FileSizes).
func FromStore(ctx context.Context, s Store, root string) (Closure, error) {
	sizes, err := s.ClosureSizes(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("read closure of %s from store: %w", root, err)
	}
	c := make(Closure, len(sizes))
	for p, n := range sizes {
		c[p] = Path{NarSize: n}
	}
	return c, nil
}

// lookups is how many narinfos are read from a cache at once.
const lookups = 32

// FromCache reads the closure of roots from a binary cache, following the
// narinfos' References: what a host's current system is made of when only
// the cache still has it. A path whose narinfo is missing gives an error
// wrapping cache.ErrNotFound (the cache does not hold the whole closure);
// a narinfo that does not parse, one wrapping cache.ErrBadNarInfo.
func FromCache(ctx context.Context, b cache.Backend, roots ...string) (Closure, error) {
	c := Closure{}
	var mu sync.Mutex
	level := make([]string, 0, len(roots))
	for _, r := range roots {
		if _, seen := c[r]; !seen {
			c[r] = Path{}
			level = append(level, r)
		}
	}
	for len(level) > 0 {
		var next []string
		err := parallel.ForEach(ctx, len(level), lookups, func(i int) error {
			ni, err := narInfo(ctx, b, level[i])
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			c[level[i]] = Path{NarSize: ni.NarSize, FileSize: ni.FileSize}
			for _, ref := range ni.References {
				if _, seen := c[ref]; !seen {
					c[ref] = Path{}
					next = append(next, ref)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read closure from cache %s: %w", b, err)
		}
		level = next
	}
	return c, nil
}

// FileSizes fills in the compressed size, from the cache's narinfos, of
// the paths of cur that old lacks and whose size is not known yet: the
// download of a host switching from old to cur. A path the cache does not
// hold keeps FileSize 0 (Diff.Download counts it as Unknown); other
// failures to read the cache are returned.
func FileSizes(ctx context.Context, b cache.Backend, old, cur Closure) error {
	var missing []string
	for p, info := range cur {
		if _, ok := old[p]; !ok && info.FileSize == 0 {
			missing = append(missing, p)
		}
	}
	var mu sync.Mutex
	err := parallel.ForEach(ctx, len(missing), lookups, func(i int) error {
		ni, err := narInfo(ctx, b, missing[i])
		if errors.Is(err, cache.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		info := cur[missing[i]]
		info.FileSize = ni.FileSize
		cur[missing[i]] = info
		return nil
	})
	if err != nil {
		return fmt.Errorf("read download sizes from cache %s: %w", b, err)
	}
	return nil
}

func narInfo(ctx context.Context, b cache.Backend, storePath string) (*cache.NarInfo, error) {
	rc, err := b.Get(ctx, cache.NarInfoKey(storePath))
	if err != nil {
		return nil, fmt.Errorf("narinfo of %s: %w", storePath, err)
	}
	defer rc.Close()
	ni, err := cache.ParseNarInfo(rc)
	if err != nil {
		return nil, fmt.Errorf("narinfo of %s: %w", storePath, err)
	}
	if ni.StorePath != storePath {
		return nil, fmt.Errorf("narinfo of %s: %w: it describes %s", storePath, cache.ErrBadNarInfo, ni.StorePath)
	}
	return ni, nil
}

// Sources are where closures are read from: the builder's store, which
// holds what it built, and the binary cache, which also holds what hosts
// run now when the store has lost it. Cache may be nil.
type Sources struct {
	Store Store
	Cache cache.Backend
}

// Closure reads root's closure from the store, or from the cache when the
// store does not hold root.
func (s Sources) Closure(ctx context.Context, root string) (Closure, error) {
	c, err := FromStore(ctx, s.Store, root)
	if errors.Is(err, nix.ErrNotInStore) && s.Cache != nil {
		return FromCache(ctx, s.Cache, root)
	}
	return c, err
}

// Diff compares the closure of newRoot with that of oldRoot ("" for a host
// with nothing yet) and fills in the download sizes from the cache.
func (s Sources) Diff(ctx context.Context, oldRoot, newRoot string) (Diff, error) {
	var old Closure
	if oldRoot != "" {
		var err error
		if old, err = s.Closure(ctx, oldRoot); err != nil {
			return Diff{}, err
		}
	}
	cur, err := s.Closure(ctx, newRoot)
	if err != nil {
		return Diff{}, err
	}
	if s.Cache != nil {
		if err := FileSizes(ctx, s.Cache, old, cur); err != nil {
			return Diff{}, err
		}
	}
	return Compute(old, cur), nil
}
