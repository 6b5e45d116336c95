package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/queue/sqlite"
)

// BenchmarkEnqueue measures Enqueue from many goroutines (group commit),
// each a new commit on one of eight branches, as webhooks arrive.
func BenchmarkEnqueue(b *testing.B) {
	q, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "queue.db"), queue.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			c := fmt.Sprintf("%040x", i)
			_, err := q.Enqueue(context.Background(), queue.EnqueueRequest{
				Kind: queue.KindEval, Key: queue.EvalKey("homelab", c), Repo: "homelab", Branch: fmt.Sprint("b", i%8),
				Commit: c, Supersede: true, DeliveryKey: fmt.Sprint("github:", i),
				Remote: queue.Remote{Forge: "github", URL: "https://github.com/alice/homelab", FullName: "alice/homelab"},
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}
