package sqlqueue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/homelab-farm/farm/internal/queue"
)

// maxBatch bounds how many enqueues share one transaction.
const maxBatch = 256

// errClosed is returned by Enqueue after Close.
var errClosed = errors.New("queue closed")

// batcher is group commit for Enqueue: one goroutine takes every request
// waiting, runs them in order in one transaction, commits once (one fsync
// for all), and answers each. If the shared transaction fails, each request
// is retried in a transaction of its own so that one bad request cannot fail
// the others. A request is answered only after its transaction committed.
type batcher struct {
	q    *Queue
	reqs chan *batchReq
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

type batchReq struct {
	req  queue.EnqueueRequest
	res  queue.EnqueueResult
	err  error
	done chan struct{}
}

func newBatcher(q *Queue) *batcher {
	b := &batcher{q: q, reqs: make(chan *batchReq), stop: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	return b
}

func (b *batcher) enqueue(ctx context.Context, req queue.EnqueueRequest) (queue.EnqueueResult, error) {
	r := &batchReq{req: req, done: make(chan struct{})}
	select {
	case b.reqs <- r:
	case <-b.stop:
		return queue.EnqueueResult{}, fmt.Errorf("enqueue %s: %w", req.Key, errClosed)
	case <-ctx.Done():
		return queue.EnqueueResult{}, fmt.Errorf("enqueue %s: %w", req.Key, ctx.Err())
	}
	// Once handed over, the request is committed or failed; wait for the
	// answer even if ctx ends, so a 202 is never sent for a rolled-back job
	// and never withheld for a committed one.
	<-r.done
	if r.err != nil {
		return queue.EnqueueResult{}, fmt.Errorf("enqueue %s: %w", req.Key, r.err)
	}
	return r.res, nil
}

func (b *batcher) close() {
	b.once.Do(func() { close(b.stop) })
	<-b.done
}

func (b *batcher) run() {
	defer close(b.done)
	for {
		var first *batchReq
		select {
		case first = <-b.reqs:
		case <-b.stop:
			return
		}
		batch := []*batchReq{first}
	more:
		for len(batch) < maxBatch {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		b.commit(batch)
	}
}

func (b *batcher) commit(batch []*batchReq) {
	defer func() {
		for _, r := range batch {
			close(r.done)
		}
	}()
	ctx := context.Background()
	if len(batch) > 1 {
		err := b.q.inTx(ctx, func(tx *sql.Tx) error {
			for _, r := range batch {
				res, err := b.q.enqueueTx(ctx, tx, r.req)
				if err != nil {
					return err
				}
				r.res = res
			}
			return nil
		})
		if err == nil {
			return
		}
		// Fall through: one at a time.
	}
	for _, r := range batch {
		r.res, r.err = queue.EnqueueResult{}, nil
		r.err = b.q.inTx(ctx, func(tx *sql.Tx) error {
			var err error
			r.res, err = b.q.enqueueTx(ctx, tx, r.req)
			return err
		})
	}
}
