package pipeline_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/hostname"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/state"
)

// TestEvaluationReuse: a push that leaves the flake's files alone reuses
// the last evaluation of the same source instead of evaluating again,
// unless that evaluation had a host fail.
func TestEvaluationReuse(t *testing.T) {
	good := map[string]fleetHost{"alpha": {Version: "1"}, "beta": {Version: "1"}}
	for _, tc := range []struct {
		name   string
		first  map[string]fleetHost
		second func(t *testing.T, h *harness) string
		reused bool
	}{
		{"same flake source", good, func(t *testing.T, h *harness) string {
			return h.commitFile(t, "README.md", "docs only\n", "docs")
		}, true},
		{"flake changed", good, func(t *testing.T, h *harness) string {
			return h.commit(t, map[string]fleetHost{"alpha": {Version: "1"}, "beta": {Version: "2"}}, "beta v2")
		}, false},
		{"a file next to the flake changed", good, func(t *testing.T, h *harness) string {
			return h.commitFile(t, "nix/flake.lock", "{}\n", "lock")
		}, false},
		{"the earlier evaluation had a failure", map[string]fleetHost{"alpha": {Version: "1"}, "beta": {Broken: "attribute 'x' missing"}},
			func(t *testing.T, h *harness) string {
				return h.commitFile(t, "README.md", "docs only\n", "docs")
			}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			m := &fakeMetrics{}
			h.p.Metrics = m
			c1 := h.commit(t, tc.first, "fleet")
			j1 := h.job(c1)
			h.process(t, j1)
			c2 := tc.second(t, h)
			j2 := h.job(c2)
			built := len(h.realisedHosts())
			h.process(t, j2)

			wantEvals := []string{c1, c2}
			if tc.reused {
				wantEvals = []string{c1}
			}
			if got := h.evaluatedCommits(); !slices.Equal(got, wantEvals) {
				t.Errorf("evaluated %v, want %v", short(got), short(wantEvals))
			}
			if m.evals != len(wantEvals) {
				t.Errorf("eval durations reported %d, want %d (none for a reuse)", m.evals, len(wantEvals))
			}
			first, second := h.targets(t, j1.ID), h.targets(t, j2.ID)
			if len(second) != len(h.fleets[c2]) {
				t.Fatalf("second evaluation has %d targets, want %d", len(second), len(h.fleets[c2]))
			}
			if tc.reused {
				for host, tg := range second {
					if tg.OutPath != first[host].OutPath || tg.DrvPath != first[host].DrvPath || tg.State != state.TargetCached {
						t.Errorf("%s reused as %+v, want the first evaluation's paths, cached", host, tg)
					}
				}
				if n := len(h.realisedHosts()); n != built {
					t.Errorf("a reused evaluation built %d targets, want none", n-built)
				}
			}
		})
	}
}

// TestInvalidHostName: a host whose attribute name is not a valid host
// name fails alone, recorded under its placeholder; it is never built,
// never gets a gc root and is never deployed, and the other hosts are.
func TestInvalidHostName(t *testing.T) {
	const evil = "../mirror/hooks/reference-transaction"
	for _, tc := range []struct {
		name string
		// eval, if set, replaces the fake Nix's evaluation.
		eval func(h *harness) func(context.Context, string, nix.EvalOptions) ([]nix.Target, error)
	}{
		{"refused by Nix", nil},
		{"let through by Nix", func(h *harness) func(context.Context, string, nix.EvalOptions) ([]nix.Target, error) {
			// An implementation that breaks the contract: the name comes
			// back as a buildable target.
			return func(ctx context.Context, flake string, opts nix.EvalOptions) ([]nix.Target, error) {
				ts, err := h.eval(ctx, flake, opts)
				for i, tg := range ts {
					if tg.Error != "" {
						ts[i] = nix.Target{Host: evil, Kind: "nixos", System: "x86_64-linux",
							DrvPath: storePath("evil", "1", "drv") + ".drv", OutPath: storePath("evil", "1", "out")}
					}
				}
				return ts, err
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			if tc.eval != nil {
				h.nix.eval = tc.eval(h)
			}
			c := h.commit(t, map[string]fleetHost{"good": {Version: "1"}, evil: {Version: "1"}}, "evil host")
			j := h.job(c)
			res := h.process(t, j)
			if res.Hosts != 2 || res.Failed != 1 {
				t.Errorf("result = %+v, want 2 hosts, 1 failed", res)
			}
			got := h.targets(t, j.ID)
			bad, ok := got[hostname.Placeholder(evil)]
			if !ok || bad.State != state.TargetFailed || !strings.Contains(bad.Reason, `is not a valid host name`) {
				t.Errorf("evil host recorded as %+v, want failed under %s", bad, hostname.Placeholder(evil))
			}
			if bad.DrvPath != "" || bad.OutPath != "" {
				t.Errorf("evil host kept paths: %+v", bad)
			}
			if g := got["good"]; g.State != state.TargetBuilt {
				t.Errorf("good = %s (%s), want built", g.State, g.Reason)
			}
			for host := range got {
				if !hostname.Valid(host) {
					t.Errorf("a target is recorded under %q", host)
				}
			}
			if hosts := h.realisedHosts(); !slices.Equal(hosts, []string{"good"}) {
				t.Errorf("built %v, want just good", hosts)
			}
			for _, c := range h.realised {
				if filepath.Dir(c.AddRoot) != h.gc {
					t.Errorf("gc root %q is not in %s", c.AddRoot, h.gc)
				}
			}
			if g := h.host(t, "good"); g.DesiredCommit != c {
				t.Errorf("good wants %q, want %s", g.DesiredCommit, c)
			}
			for _, ev := range h.events(t) {
				if ev.Type != string(farmapi.HostDesired) {
					continue
				}
				var d farmapi.HostDesiredData
				if err := json.Unmarshal(ev.Data, &d); err != nil || d.Host != "good" {
					t.Errorf("host.desired %s (%v); want only good", ev.Data, err)
				}
			}
		})
	}
}

// short shortens commit ids for messages.
func short(cs []string) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c[:min(7, len(c))]
	}
	return out
}
