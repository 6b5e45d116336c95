package state_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
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

func TestRootQueries(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	p := func(name string) string { return "/nix/store/" + fmt.Sprintf("%032d", len(name)) + "-" + name }

	done, _, err := s.StartEvaluation(ctx, state.Evaluation{JobID: 1, Repo: "r", Branch: "main", Commit: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	for host, st := range map[string]string{"alpha": state.TargetBuilt, "beta": state.TargetCached, "gamma": state.TargetFailed} {
		tg, err := s.PutTarget(ctx, state.Target{EvalID: done.ID, Host: host, OutPath: p(host + "-1"), State: state.TargetPending})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetTargetState(ctx, tg.ID, st, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.FinishEvaluation(ctx, done.ID, state.EvalDone, "", ""); err != nil {
		t.Fatal(err)
	}
	running, _, err := s.StartEvaluation(ctx, state.Evaluation{JobID: 2, Repo: "r", Branch: "main", Commit: "c2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutTarget(ctx, state.Target{EvalID: running.ID, Host: "alpha", OutPath: p("alpha-2"), State: state.TargetBuilding}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutTarget(ctx, state.Target{EvalID: running.ID, Host: "beta", State: state.TargetPending}); err != nil {
		t.Fatal(err)
	}

	// alpha deployed 1..4 (4 twice in the history), beta once.
	seq := uint64(0)
	deploy := func(host, path string) {
		seq++
		if err := s.SetDesired(ctx, host, path, "c", seq, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, "host.desired", map[string]any{"host": host, "store_path": path, "seq": seq}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"a1", "a2", "a3", "a4", "a3", "a4"} {
		deploy("alpha", p(n))
	}
	deploy("beta", p("b1"))
	if _, err := s.Append(ctx, "host.report", map[string]any{"host": "alpha", "current": p("zz")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Report(ctx, "alpha", p("a3"), "ok", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Report(ctx, "delta", p("d0"), "ok", ""); err != nil {
		t.Fatal(err)
	}

	deployed, err := s.DeployedPaths(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"alpha": {p("a4"), p("a3"), p("a2")}, "beta": {p("b1")}}
	if fmt.Sprint(deployed) != fmt.Sprint(want) {
		t.Errorf("DeployedPaths(3) = %v, want %v", deployed, want)
	}
	reported, err := s.ReportedPaths(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"alpha": p("a3"), "delta": p("d0")}; fmt.Sprint(reported) != fmt.Sprint(want) {
		t.Errorf("ReportedPaths = %v, want %v", reported, want)
	}
	built, err := s.BuiltSince(ctx, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{p("beta-1"), p("alpha-1")}; !slices.Equal(built, want) { // sorted by path
		t.Errorf("BuiltSince(an hour ago) = %v, want %v", built, want)
	}
	if built, err := s.BuiltSince(ctx, time.Now().Add(time.Hour)); err != nil || len(built) != 0 {
		t.Errorf("BuiltSince(in an hour) = %v, %v; want nothing", built, err)
	}
	run, err := s.RunningPaths(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{p("alpha-2")}; !slices.Equal(run, want) {
		t.Errorf("RunningPaths = %v, want %v", run, want)
	}
}
