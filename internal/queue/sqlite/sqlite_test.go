package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/queue/queuetest"
	"github.com/homelab-farm/farm/internal/queue/sqlite"
)

func TestContract(t *testing.T) {
	t.Parallel()
	queuetest.RunContractTests(t, func(t *testing.T, opts queue.Options) queue.Queue {
		q, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "queue.db"), opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		return q
	})
}

// TestReopen checks that what Enqueue acknowledged, and a claim's lease,
// survive closing and reopening the file.
func TestReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "queue.db")
	clk := queuetest.NewClock()
	q, err := sqlite.Open(ctx, path, queue.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"a", "b"} {
		if _, err := q.Enqueue(ctx, queue.EnqueueRequest{Kind: queue.KindEval, Key: c, Repo: "r", Commit: c, DeliveryKey: "d" + c}); err != nil {
			t.Fatal(err)
		}
	}
	held, err := q.Claim(ctx, queue.ClaimRequest{Worker: "w", Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	q, err = sqlite.Open(ctx, path, queue.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if r, err := q.Enqueue(ctx, queue.EnqueueRequest{Kind: queue.KindEval, Key: "a", Repo: "r", Commit: "a", DeliveryKey: "da"}); err != nil || !r.Replay {
		t.Fatalf("replay after reopen = %+v, %v; want Replay", r, err)
	}
	next, err := q.Claim(ctx, queue.ClaimRequest{Worker: "w", Lease: time.Minute})
	if err != nil || next.ID == held.ID {
		t.Fatalf("Claim after reopen = job %d, %v; want the other job", next.ID, err)
	}
	clk.Advance(2 * time.Minute)
	again, err := q.Claim(ctx, queue.ClaimRequest{Worker: "w", Lease: time.Minute})
	if err != nil || again.ID != held.ID {
		t.Fatalf("Claim after lease expiry = job %d, %v; want %d", again.ID, err, held.ID)
	}
}
