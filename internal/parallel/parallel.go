package parallel

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// ForEach runs f(0..n-1) on at most jobs goroutines and returns the first
// error (or the context's, when it ends first); after an error no new call
// starts, and ForEach returns once the calls running have returned.
func ForEach(ctx context.Context, n, jobs int, f func(i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(jobs, 1))
	for i := range n {
		if gctx.Err() != nil {
			break // a call failed or ctx ended: start no more
		}
		g.Go(func() error { return f(i) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}
