// Package parallel runs bounded numbers of calls at once.
package parallel

import (
	"context"
	"sync"
)

// ForEach runs f(0..n-1) on at most jobs goroutines and returns the first
// error (or the context's, when it ends first); after an error no new call
// starts, and ForEach returns once the calls running have returned.
func ForEach(ctx context.Context, n, jobs int, f func(i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(jobs, n) {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					cancel(err)
				}
			}
		})
	}
	for i := 0; i < n; i++ {
		select {
		case next <- i:
			continue
		case <-ctx.Done():
		}
		break
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}
