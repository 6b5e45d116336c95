package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/parallel"
)

// maxGCRounds bounds how often a push checks its closure again because a
// collection overlapped it.
const maxGCRounds = 20

// gcState reads the collection markers, retrying like an upload.
func (p *Pusher) gcState(ctx context.Context, log *slog.Logger) (GCState, error) {
	var s GCState
	err := p.Retry.do(ctx, log, "collection markers", func() error {
		var err error
		s, err = ReadGCState(ctx, p.Backend, time.Now())
		return err
	})
	return s, err
}

// settle makes sure that no collection that overlapped the push left its
// closure incomplete. before is what the markers said before the push looked
// at the cache. Until the markers show that no collection overlapped the
// last round, it waits for a running collection to end (or go stale), then
// checks every path of the closure (narinfo and NAR) and uploads again what
// is missing. See package gc for why this suffices.
func (p *Pusher) settle(ctx context.Context, log *slog.Logger, comp Compression, closure []nix.PathInfo, before GCState, res *Result) error {
	for round := 1; ; round++ {
		after, err := p.waitCollection(ctx, log)
		if err != nil {
			return err
		}
		if !overlapped(before, after) {
			return nil
		}
		if round > maxGCRounds {
			return fmt.Errorf("cache collections overlapped the push %d times in a row", maxGCRounds)
		}
		before = after
		missing, err := p.incomplete(ctx, closure)
		if err != nil {
			return err
		}
		log.Info("a cache collection overlapped the push; closure checked again",
			"round", round, "paths", len(closure), "missing", len(missing))
		if len(missing) == 0 {
			continue
		}
		u := &upload{p: p, log: log, comp: comp, missing: missing, large: make(chan struct{}, largeJobs)}
		err = u.run(ctx)
		n := int(u.uploaded.Load())
		res.Uploaded += n
		res.Repaired += n
		res.NarBytes += u.narBytes.Load()
		res.FileBytes += u.fileBytes.Load()
		if err != nil {
			return err
		}
	}
}

// waitCollection reads the markers until no live collection is running.
func (p *Pusher) waitCollection(ctx context.Context, log *slog.Logger) (GCState, error) {
	for logged := false; ; {
		s, err := p.gcState(ctx, log)
		if err != nil || !s.Live() {
			return s, err
		}
		if !logged {
			log.Info("waiting for a cache collection to end", "collection", s.Running.ID, "started", s.Running.Started)
			logged = true
		}
		poll := min(max(s.Running.StaleAfter/10, 10*time.Millisecond), 5*time.Second)
		select {
		case <-ctx.Done():
			return GCState{}, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// incomplete returns the closure's paths whose narinfo or NAR is missing
// from the cache (or whose narinfo does not parse).
func (p *Pusher) incomplete(ctx context.Context, closure []nix.PathInfo) ([]nix.PathInfo, error) {
	var mu sync.Mutex
	var missing []nix.PathInfo
	err := parallel.ForEach(ctx, len(closure), p.jobs(), func(i int) error {
		pi := closure[i]
		ni, err := ReadNarInfo(ctx, p.Backend, pi.Path)
		if err == nil {
			_, err = p.Backend.Stat(ctx, ni.URL)
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrNotFound), errors.Is(err, ErrBadNarInfo):
			mu.Lock()
			missing = append(missing, pi)
			mu.Unlock()
			return nil
		default:
			return fmt.Errorf("check %s: %w", pi.Path, err)
		}
	})
	return missing, err
}
