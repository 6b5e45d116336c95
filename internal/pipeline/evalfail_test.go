package pipeline_test

import (
	"context"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
)

// TestPermanentEvalErrorFailsAtOnce: a syntax error in the flake fails the
// evaluation on the first attempt, with Nix's message (not the flake
// reference) in the status; an infrastructure failure is still retried.
func TestPermanentEvalErrorFailsAtOnce(t *testing.T) {
	hosts := map[string]fleettest.Host{"alpha": {System: "x86_64-linux", Version: "1"}}
	f := newFarm(t, hosts)
	ctx := context.Background()
	commit := f.repo.CommitFile(t, "nix/flake.nix", "{\n  outputs = { self }: {\n", "break the flake")
	id := f.push(t, commit)
	ran, err := f.runReady()
	if ran != 1 || err != nil {
		t.Fatalf("ran %d jobs, %v; want one job run without error (the failure is a result)", ran, err)
	}
	job, err := f.q.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if job.State != queue.Done || job.Attempts != 1 {
		t.Errorf("job %s after %d attempts, want done after 1", job.State, job.Attempts)
	}
	evs, err := f.st.Evaluations(ctx, 1)
	if err != nil || len(evs) != 1 {
		t.Fatalf("evaluations %v, %v", evs, err)
	}
	if evs[0].State != state.EvalFailed || !strings.Contains(evs[0].Error, "syntax error") {
		t.Errorf("evaluation %s, error %q; want failed with Nix's error", evs[0].State, evs[0].Error)
	}
	want := "error: syntax error, unexpected end of file at nix/flake.nix:2:24"
	if s := f.forge.status(commit, "farm/eval"); s.State != forge.StateFailure || s.Description != want {
		t.Errorf("farm/eval status %q %q, want failure %q", s.State, s.Description, want)
	}

	// The daemon cannot be reached: retried, as before.
	f.p.Nix = &nix.Client{Env: append(testenv.Nix(t), "NIX_REMOTE=unix://"+t.TempDir()+"/socket")}
	hosts["alpha"] = fleettest.Host{System: "x86_64-linux", Version: "2"}
	f.repo.CommitFile(t, "nix/flake.nix", fleettest.FlakeNix, "fix the flake")
	commit = f.repo.Commit(t, hosts, "alpha v2")
	id = f.push(t, commit)
	if ran, err := f.runReady(); ran != 1 || err == nil {
		t.Fatalf("ran %d jobs, %v; want the job to fail", ran, err)
	}
	if job, err := f.q.Get(ctx, id); err != nil || job.State != queue.Queued {
		t.Errorf("job after an infrastructure failure: %s, %v; want queued for a retry", job.State, err)
	}
}

// TestHostEvalErrorDescription: a host whose evaluation fails gets Nix's
// own message as its status description, and the overall status counts
// the hosts by outcome.
func TestHostEvalErrorDescription(t *testing.T) {
	hosts := map[string]fleettest.Host{
		"alpha":  {System: "x86_64-linux", Version: "1"},
		"broken": {System: "x86_64-linux", Version: "1", Broken: true},
	}
	f := newFarm(t, hosts)
	commit := f.repo.CommitAll(t, "head")
	f.push(t, commit)
	f.runAll(t)
	want := "error: host broken: option does not exist"
	if s := f.forge.status(commit, "farm/host/broken"); s.State != forge.StateFailure || s.Description != want {
		t.Errorf("broken status %q %q, want failure %q", s.State, s.Description, want)
	}
	if s := f.forge.status(commit, "farm/eval"); s.State != forge.StateFailure || s.Description != "1 built, 0 cached, 0 skipped, 1 failed" {
		t.Errorf("farm/eval status %q %q, want failure with the counts", s.State, s.Description)
	}
	if r := f.targets(t)["broken"].Reason; !strings.HasPrefix(r, "evaluation failed: ") {
		t.Errorf("broken reason %q: the full reason stays for the target page", r)
	}
}
