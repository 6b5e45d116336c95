package state_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/homelab-farm/farm/internal/state"
)

// BenchmarkAppend appends one event per transaction (one fsync each) to
// the SQLite state; BenchmarkAppendAll 100 per transaction.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	s, err := state.Open(ctx, filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		if _, err := s.Append(ctx, "target.built", map[string]string{"host": "alpha"}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendAll(b *testing.B) {
	ctx := context.Background()
	s, err := state.Open(ctx, filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	evs := make([]state.NewEvent, 100)
	for i := range evs {
		evs[i] = state.NewEvent{Type: "evaluation.queued", Data: map[string]int{"job": i}}
	}
	for b.Loop() {
		if err := s.AppendAll(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
}
