package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/parallel"
)

// Store is the local Nix store a push reads path information from.
type Store interface {
	// PathInfo returns the closure of paths with what the store records of
	// each path. It fails for a path the store does not hold.
	PathInfo(ctx context.Context, paths ...string) ([]nix.PathInfo, error)
}

// CacheInfo is the nix-cache-info a push writes when the cache has none.
const CacheInfo = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"

const (
	// listThreshold is the closure size from which one listing of the cache
	// is cheaper than one existence check per path.
	listThreshold = 64
	// smallNar is the NAR size under which a NAR is compressed in memory and
	// uploaded with its final name in one request.
	smallNar = 4 << 20
)

// Pusher uploads store paths and their closures to a binary cache.
type Pusher struct {
	Backend     Backend
	Key         SecretKey
	Store       Store
	Compression Compression // "" means zstd
	// StoreRoot is prefixed to store paths when reading their contents (a
	// chroot store such as local?root=/tmp/x); empty for the real /nix/store.
	StoreRoot string
	// Jobs is how many paths are uploaded at once; 0 means 16. Of these, at
	// most two large NARs stream at once (each compresses on every CPU), so
	// memory stays bounded whatever Jobs is.
	Jobs int
	// Retry is how failed uploads are retried; the zero value means the
	// default (about two minutes of exponential backoff).
	Retry Retry
	// Progress, if set, is called after each path is done. It may be called
	// from several goroutines at once.
	Progress func(Event)
	Log      *slog.Logger

	streamed atomic.Int64
}

// Streamed is how many NAR bytes this Pusher has read from the store so far,
// counted as they stream (for progress reports while a large path uploads).
func (p *Pusher) Streamed() int64 { return p.streamed.Load() }

type streamCounter struct{ n *atomic.Int64 }

func (s streamCounter) Write(p []byte) (int, error) {
	s.n.Add(int64(len(p)))
	return len(p), nil
}

// Event reports one step of a push.
type Event struct {
	Path      string
	Skipped   bool  // already in the cache
	NarBytes  int64 // uncompressed size
	FileBytes int64 // compressed size uploaded
}

// Result summarises a push.
type Result struct {
	Paths    int // paths in the closure
	Uploaded int
	Skipped  int // already in the cache
	// Repaired counts paths uploaded again because a garbage collection
	// that overlapped the push removed them (they are also in Uploaded).
	Repaired  int
	NarBytes  int64
	FileBytes int64
	Duration  time.Duration
}

// Push uploads paths and every path they reference, transitively, that the
// cache does not hold yet. A NAR is always uploaded before its narinfo, and a
// narinfo only after the narinfos of all its references, so at no moment
// does the cache advertise a path it cannot serve in full. An interrupted
// push leaves the cache consistent; running it again completes it.
func (p *Pusher) Push(ctx context.Context, paths ...string) (Result, error) {
	start := time.Now()
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	comp, err := ParseCompression(string(p.Compression))
	if err != nil {
		return Result{}, err
	}
	storePaths := make([]string, 0, len(paths))
	for _, path := range paths {
		sp, err := nix.StorePath(path)
		if err != nil {
			return Result{}, err
		}
		storePaths = append(storePaths, sp)
	}
	closure, err := p.Store.PathInfo(ctx, storePaths...)
	if err != nil {
		return Result{}, fmt.Errorf("closure: %w", err)
	}
	res := Result{Paths: len(closure)}

	// What the collection markers say before the cache is looked at: see
	// settle.
	gcBefore, err := p.gcState(ctx, log)
	if err != nil {
		return res, err
	}
	present, err := p.present(ctx, closure)
	if err != nil {
		return res, err
	}
	if err := p.ensureCacheInfo(ctx); err != nil {
		return res, err
	}

	var missing []nix.PathInfo
	for _, pi := range closure {
		if present[pi.Path] {
			res.Skipped++
			if p.Progress != nil {
				p.Progress(Event{Path: pi.Path, Skipped: true})
			}
			continue
		}
		missing = append(missing, pi)
	}
	if len(missing) > 0 {
		u := &upload{p: p, log: log, comp: comp, missing: missing, large: make(chan struct{}, largeJobs)}
		err = u.run(ctx)
		res.Uploaded = int(u.uploaded.Load())
		res.NarBytes = u.narBytes.Load()
		res.FileBytes = u.fileBytes.Load()
	}
	if err == nil {
		err = p.settle(ctx, log, comp, closure, gcBefore, &res)
	}
	res.Duration = time.Since(start)
	return res, err
}

// present reports which closure paths already have a narinfo in the cache.
func (p *Pusher) present(ctx context.Context, closure []nix.PathInfo) (map[string]bool, error) {
	present := make(map[string]bool, len(closure))
	if len(closure) >= listThreshold {
		have := make(map[string]bool)
		err := p.Backend.List(ctx, "", func(o Object) error {
			if strings.HasSuffix(o.Key, ".narinfo") {
				have[o.Key] = true
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", p.Backend, err)
		}
		for _, pi := range closure {
			present[pi.Path] = have[NarInfoKey(pi.Path)]
		}
		return present, nil
	}
	var mu sync.Mutex
	err := parallel.ForEach(ctx, len(closure), p.jobs(), func(i int) error {
		pi := closure[i]
		_, err := p.Backend.Stat(ctx, NarInfoKey(pi.Path))
		switch {
		case err == nil:
			mu.Lock()
			present[pi.Path] = true
			mu.Unlock()
		case !errors.Is(err, ErrNotFound):
			return fmt.Errorf("check %s: %w", NarInfoKey(pi.Path), err)
		}
		return nil
	})
	if err != nil {
		return present, err
	}
	return present, ctx.Err()
}

func (p *Pusher) ensureCacheInfo(ctx context.Context) error {
	_, err := p.Backend.Stat(ctx, "nix-cache-info")
	if err == nil {
		return nil
	}
	if !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("check nix-cache-info: %w", err)
	}
	return p.Retry.do(ctx, p.Log, "nix-cache-info", func() error {
		if err := p.Backend.Put(ctx, "nix-cache-info", strings.NewReader(CacheInfo), int64(len(CacheInfo))); err != nil {
			return fmt.Errorf("write nix-cache-info: %w", err)
		}
		return nil
	})
}

func (p *Pusher) jobs() int {
	if p.Jobs > 0 {
		return p.Jobs
	}
	return 16
}

// PutLog uploads the build log of the derivation drvPath to log/<drv>, where
// `nix log` looks for it.
func PutLog(ctx context.Context, b Backend, drvPath string, r io.Reader, size int64) error {
	name := filepath.Base(drvPath)
	if !strings.HasSuffix(name, ".drv") || len(name) < 38 {
		return fmt.Errorf("put log: %q is not a derivation path", drvPath)
	}
	if err := b.Put(ctx, "log/"+name, r, size); err != nil {
		return fmt.Errorf("put log %s: %w", name, err)
	}
	return nil
}
