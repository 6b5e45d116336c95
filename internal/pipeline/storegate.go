package pipeline

import (
	"context"
	"fmt"

	"github.com/homelab-farm/farm/internal/queue"
)

// StoreGate keeps the builder's store collection away from running jobs;
// *storegc.Gate is the real one. Build waits while a collection runs or
// waits and fails only when ctx ends.
type StoreGate interface {
	Build(ctx context.Context) (release func(), err error)
}

// HoldingStore returns process run while holding gate shared: from the
// first derivation a job's evaluation writes to its last push, nothing it
// made is rooted (the per-host roots come with builds, the retention with
// recorded targets), so no store collection may run in between. A job that
// cannot get the gate before its context ends fails, to be retried.
func HoldingStore(gate StoreGate, process Processor) Processor {
	return func(ctx context.Context, job queue.Job) ([]byte, error) {
		release, err := gate.Build(ctx)
		if err != nil {
			return nil, fmt.Errorf("job %d: %w", job.ID, err)
		}
		defer release()
		return process(ctx, job)
	}
}
