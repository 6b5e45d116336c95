package storegc

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/semaphore"
)

// exclusive is the weight a collection takes: more than any number of
// builds can hold at once.
const exclusive = 1 << 40

// Gate is held shared by builds and exclusively by a store collection. The
// zero Gate is ready to use; it is safe for concurrent use, and waiters are
// served in the order they asked.
type Gate struct {
	once sync.Once
	sem  *semaphore.Weighted
}

func (g *Gate) init() { g.once.Do(func() { g.sem = semaphore.NewWeighted(exclusive) }) }

// Build waits until no collection runs or waits, and holds the gate
// shared until release is called. It fails only when ctx ends first.
func (g *Gate) Build(ctx context.Context) (release func(), err error) {
	g.init()
	if err := g.sem.Acquire(ctx, 1); err != nil {
		return nil, fmt.Errorf("wait for the store collection: %w", err)
	}
	return sync.OnceFunc(func() { g.sem.Release(1) }), nil
}

// Collect waits until no build holds the gate, and holds it exclusively
// until release is called. It fails only when ctx ends first.
func (g *Gate) Collect(ctx context.Context) (release func(), err error) {
	g.init()
	if err := g.sem.Acquire(ctx, exclusive); err != nil {
		return nil, fmt.Errorf("wait for running builds: %w", err)
	}
	return sync.OnceFunc(func() { g.sem.Release(exclusive) }), nil
}
