package pipeline_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/storegc"
)

// A job holds the store gate while it runs: a collection waits for it, and
// a job asking while a collection holds the gate waits for that.
func TestHoldingStore(t *testing.T) {
	ctx := context.Background()
	gate := &storegc.Gate{}
	running, finish := make(chan struct{}), make(chan struct{})
	process := pipeline.HoldingStore(gate, func(ctx context.Context, job queue.Job) ([]byte, error) {
		close(running)
		<-finish
		return []byte("done"), nil
	})
	result := make(chan string, 1)
	go func() {
		out, err := process(ctx, queue.Job{ID: 1})
		if err != nil {
			t.Error(err)
		}
		result <- string(out)
	}()
	<-running
	collected := make(chan struct{})
	go func() {
		release, err := gate.Collect(ctx)
		if err != nil {
			t.Error(err)
			return
		}
		close(collected)
		release()
	}()
	select {
	case <-collected:
		t.Fatal("a store collection got the gate while a job ran")
	case <-time.After(200 * time.Millisecond):
	}
	close(finish)
	if got := <-result; got != "done" {
		t.Errorf("job result %q, want the processor's", got)
	}
	<-collected

	release, err := gate.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	ran := false
	blocked := pipeline.HoldingStore(gate, func(context.Context, queue.Job) ([]byte, error) { ran = true; return nil, nil })
	if _, err := blocked(short, queue.Job{ID: 2}); !errors.Is(err, context.DeadlineExceeded) || ran {
		t.Fatalf("a job during a collection: ran %v, %v; want it to wait and give up with its context", ran, err)
	}
	release()
	if _, err := blocked(ctx, queue.Job{ID: 3}); err != nil || !ran {
		t.Fatalf("a job after the collection: ran %v, %v", ran, err)
	}
}
