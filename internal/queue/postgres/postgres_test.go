package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/queue/postgres"
	"github.com/homelab-farm/farm/internal/queue/queuetest"
	"github.com/homelab-farm/farm/internal/testenv"
)

// schemaDSN returns the URL of a schema of the test's own.
func schemaDSN(t *testing.T) string {
	t.Helper()
	_, dsn := testenv.PostgresSchema(t, "queue_test")
	return dsn
}

func TestContract(t *testing.T) {
	t.Parallel()
	queuetest.RunContractTests(t, func(t *testing.T, opts queue.Options) queue.Queue {
		q, err := postgres.Open(context.Background(), schemaDSN(t), opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		return q
	})
}

// TestTwoBuilders: two queues on one database (two builder instances) take
// every job exactly once between them, and see each other's deliveries.
func TestTwoBuilders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := schemaDSN(t)
	var qs [2]queue.Queue
	for i := range qs {
		q, err := postgres.Open(ctx, dsn, queue.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		qs[i] = q
	}
	const jobs = 60
	for i := range jobs {
		req := queue.EnqueueRequest{Kind: queue.KindEval, Key: fmt.Sprint("k", i), Repo: "r", Commit: fmt.Sprint(i),
			DeliveryKey: fmt.Sprint("d", i)}
		if _, err := qs[i%2].Enqueue(ctx, req); err != nil {
			t.Fatal(err)
		}
		if r, err := qs[(i+1)%2].Enqueue(ctx, req); err != nil || !r.Replay {
			t.Fatalf("the other builder's replay = %+v, %v; want Replay", r, err)
		}
	}
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			q := qs[w%2]
			for {
				j, err := q.Claim(ctx, queue.ClaimRequest{Worker: fmt.Sprint("w", w), Lease: time.Minute})
				if errors.Is(err, queue.ErrEmpty) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[j.ID]++
				mu.Unlock()
				if err := q.Complete(ctx, j.ID, j.Token, nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != jobs {
		t.Fatalf("%d jobs done, want %d", len(seen), jobs)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("job %d claimed %d times", id, n)
		}
	}
}
