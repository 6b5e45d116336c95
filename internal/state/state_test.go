package state_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/state"
)

func open(t *testing.T) (*state.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := state.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestEvaluationsAndTargets(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	e, created, err := s.StartEvaluation(ctx, state.Evaluation{JobID: 1, Repo: "homelab", Branch: "main", Commit: "c1", Deploy: true})
	if err != nil || !created || e.State != state.EvalRunning {
		t.Fatalf("StartEvaluation = %+v, %v, %v; want a new running evaluation", e, created, err)
	}
	again, created, err := s.StartEvaluation(ctx, state.Evaluation{JobID: 1, Repo: "homelab", Commit: "c1"})
	if err != nil || created || again.ID != e.ID {
		t.Fatalf("restarted job: %+v, created %v, %v; want the same evaluation", again, created, err)
	}
	tg, err := s.PutTarget(ctx, state.Target{EvalID: e.ID, Host: "alpha", System: "x86_64-linux", State: state.TargetPending})
	if err != nil {
		t.Fatal(err)
	}
	tg2, err := s.PutTarget(ctx, state.Target{EvalID: e.ID, Host: "alpha", System: "x86_64-linux", OutPath: "/nix/store/x", State: state.TargetPending})
	if err != nil || tg2.ID != tg.ID {
		t.Fatalf("PutTarget again = %+v, %v; want the same id %d", tg2, err, tg.ID)
	}
	if err := s.SetTargetState(ctx, tg.ID, state.TargetFailed, "build failed"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Target(ctx, tg.ID)
	if err != nil || got.State != state.TargetFailed || got.Reason != "build failed" || got.OutPath != "/nix/store/x" || got.Finished.IsZero() {
		t.Fatalf("Target = %+v, %v", got, err)
	}
	if err := s.FinishEvaluation(ctx, e.ID, state.EvalDone, "src1", ""); err != nil {
		t.Fatal(err)
	}
	if found, err := s.FindBySource(ctx, "homelab", "src1"); err != nil || found.ID != e.ID {
		t.Fatalf("FindBySource = %+v, %v", found, err)
	}
	if _, err := s.FindBySource(ctx, "homelab", "other"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("FindBySource(other) = %v, want ErrNotFound", err)
	}
}

func TestDesiredNeverGoesBack(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	seq1, _ := s.NextSeq(ctx)
	seq2, _ := s.NextSeq(ctx)
	if seq2 <= seq1 {
		t.Fatalf("NextSeq gave %d then %d", seq1, seq2)
	}
	if err := s.SetDesired(ctx, "alpha", "/nix/store/new", "c2", seq2, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDesired(ctx, "alpha", "/nix/store/old", "c1", seq1, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	h, err := s.Host(ctx, "alpha")
	if err != nil || h.DesiredPath != "/nix/store/new" || h.DesiredSeq != seq2 {
		t.Fatalf("after a late older desired closure: %+v, %v; want the newer kept", h, err)
	}
	if err := s.Report(ctx, "alpha", "/nix/store/new", "switched", ""); err != nil {
		t.Fatal(err)
	}
	h, _ = s.Host(ctx, "alpha")
	if h.CurrentPath != "/nix/store/new" || h.DesiredPath != "/nix/store/new" || h.LastSeen.IsZero() {
		t.Fatalf("after a report: %+v", h)
	}
}

func TestAppendAll(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	if _, err := s.Append(ctx, "one", 1); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAll(ctx, []state.NewEvent{{Type: "two", Data: 2}, {Type: "three", Data: 3}}); err != nil {
		t.Fatal(err)
	}
	evs, err := s.EventsAfter(ctx, 0, 0)
	if err != nil || len(evs) != 3 || evs[1].Type != "two" || evs[2].ID != 3 || string(evs[2].Data) != "3" {
		t.Fatalf("events = %+v, %v", evs, err)
	}
}

func TestEventsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	s, path := open(t)
	changed := s.Changed()
	for i := range 3 {
		if _, err := s.Append(ctx, "target.built", map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-changed:
	case <-time.After(time.Second):
		t.Fatal("Changed was not closed by Append")
	}
	s.Close()
	s2, err := state.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	evs, err := s2.EventsAfter(ctx, 1, 0)
	if err != nil || len(evs) != 2 || evs[0].ID != 2 || string(evs[1].Data) != `{"n":2}` {
		t.Fatalf("EventsAfter(1) = %+v, %v; want events 2 and 3", evs, err)
	}
}
