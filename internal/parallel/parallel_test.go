package parallel_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/homelab-farm/farm/internal/parallel"
)

func TestForEach(t *testing.T) {
	var running, peak, calls atomic.Int64
	err := parallel.ForEach(context.Background(), 50, 3, func(int) error {
		calls.Add(1)
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		running.Add(-1)
		return nil
	})
	if err != nil || calls.Load() != 50 || peak.Load() > 3 {
		t.Fatalf("ForEach = %v after %d calls, peak %d; want nil, 50, at most 3", err, calls.Load(), peak.Load())
	}

	boom := errors.New("boom")
	calls.Store(0)
	err = parallel.ForEach(context.Background(), 1000, 1, func(i int) error {
		calls.Add(1)
		if i == 5 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || calls.Load() > 7 {
		t.Fatalf("ForEach = %v after %d calls; want boom, and no new calls after it", err, calls.Load())
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := parallel.ForEach(ctx, 10, 2, func(int) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("ForEach on a cancelled context = %v, want context.Canceled", err)
	}
}
