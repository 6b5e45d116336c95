package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/closurediff"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/state"
)

// prJob is pull request number 7 of commit, as the webhook queues it:
// build-only, on branch "pull/7".
func (h *harness) prJob(commit string) queue.Job {
	j := h.job(commit)
	j.Branch, j.Deploy, j.Payload = "pull/7", false, []byte(`{"event":"pull_request","pull_number":7}`)
	return j
}

// diffOf returns what the API serves for host's target in job's
// evaluation.
func (h *harness) diffOf(t *testing.T, job queue.Job, host string) farmapi.TargetDiff {
	t.Helper()
	tg, ok := h.targets(t, job.ID)[host]
	if !ok {
		t.Fatalf("no target for %s in job %d", host, job.ID)
	}
	d, err := pipeline.TargetDiff(context.Background(), h.st, tg.ID)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// pkgChange is a package change in brief: "linux changed 6.12.9 -> 6.12.10".
func pkgChanges(d *farmapi.ClosureDiff) []string {
	var out []string
	for _, c := range d.Packages {
		if c.Kind == "rebuilt" {
			continue
		}
		out = append(out, c.Package+" "+c.Kind+" "+strings.Join(c.From, ",")+" -> "+strings.Join(c.To, ","))
	}
	return out
}

// TestTargetDiffs: every built or cached target gets its closure diffed
// against what its host runs and against the previous build (for a pull
// request, the deploy branch's latest), with what a host downloads; a diff
// that cannot be computed is recorded with its reason and fails nothing.
func TestTargetDiffs(t *testing.T) {
	v1 := map[string]string{"linux": "6.12.9", "foo": "1.0", "zlib": "1.3"}
	v2 := map[string]string{"linux": "6.12.10", "bar": "2.0", "zlib": "1.3"}
	gone := storePath("ghost", "1", "out") // a closure in neither store nor cache

	type want struct {
		basePath   string // "old", "new", "none", "gone"
		baseCommit string // "c1", "main2", "" ...
		changes    []string
		summary    string
		errText    string // the diff failed with this in its error
	}
	tests := []struct {
		name     string
		reported string // what alpha reported before the second job: "old", "gone", "" (never)
		pr       bool   // the second job is a pull request
		current  want
		previous want
	}{
		{
			name: "deploy branch, host runs the previous build", reported: "old",
			current:  want{basePath: "old", changes: []string{"bar added  -> 2.0", "foo removed 1.0 -> ", "linux changed 6.12.9 -> 6.12.10"}},
			previous: want{basePath: "old", baseCommit: "c1", changes: []string{"bar added  -> 2.0", "foo removed 1.0 -> ", "linux changed 6.12.9 -> 6.12.10"}},
		},
		{
			name: "host never reported: everything is new", reported: "",
			current:  want{basePath: "none", changes: []string{"bar added  -> 2.0", "linux added  -> 6.12.10", "nixos-system added  -> ", "zlib added  -> 1.3"}},
			previous: want{basePath: "old", baseCommit: "c1", changes: []string{"bar added  -> 2.0", "foo removed 1.0 -> ", "linux changed 6.12.9 -> 6.12.10"}},
		},
		{
			name: "host runs a closure nobody has: that diff fails, the build does not", reported: "gone",
			current:  want{basePath: "gone", errText: "not found"},
			previous: want{basePath: "old", baseCommit: "c1", changes: []string{"bar added  -> 2.0", "foo removed 1.0 -> ", "linux changed 6.12.9 -> 6.12.10"}},
		},
		{
			name: "pull request: against the deploy branch's head, not the pull request's last build", reported: "old", pr: true,
			current:  want{basePath: "old", changes: []string{"bar added  -> 2.0", "foo removed 1.0 -> ", "linux changed 6.12.9 -> 6.12.10"}},
			previous: want{basePath: "main2", baseCommit: "main2", changes: []string{"bar added  -> 2.0", "linux changed 6.13.1 -> 6.12.10"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			h := newHarness(t)
			commits := map[string]string{}
			j1 := h.job(h.commit(t, map[string]fleetHost{"alpha": {Version: "1", Packages: v1}}, "c1"))
			commits["c1"] = j1.Commit
			h.process(t, j1)
			old := h.targets(t, j1.ID)["alpha"].OutPath
			paths := map[string]string{"old": old, "none": "", "gone": gone}
			if tt.pr {
				// The pull request built once before; main moved on since.
				h.process(t, h.prJob(h.commit(t, map[string]fleetHost{"alpha": {Version: "pr0", Packages: map[string]string{"linux": "6.0"}}}, "pr0")))
				main2 := h.job(h.commit(t, map[string]fleetHost{"alpha": {Version: "main2", Packages: map[string]string{"linux": "6.13.1", "zlib": "1.3"}}}, "main2"))
				commits["main2"] = main2.Commit
				h.process(t, main2)
				paths["main2"] = h.targets(t, main2.ID)["alpha"].OutPath
			}
			if r := paths[tt.reported]; r != "" {
				if err := h.st.Report(ctx, "alpha", r, string(farmapi.ResultSwitched), ""); err != nil {
					t.Fatal(err)
				}
			}
			fleet := map[string]fleetHost{"alpha": {Version: "2", Packages: v2}}
			j2 := h.job(h.commit(t, fleet, "c2"))
			if tt.pr {
				j2 = h.prJob(j2.Commit)
			}
			h.process(t, j2)
			tg := h.targets(t, j2.ID)["alpha"]
			if tg.State != state.TargetBuilt {
				t.Fatalf("alpha is %s (%s), want built whatever the diffs", tg.State, tg.Reason)
			}
			got := h.diffOf(t, j2, "alpha")
			if got.Target != tg.ID || got.Host != "alpha" || got.OutPath != tg.OutPath || got.State != state.TargetBuilt {
				t.Errorf("diff names %+v, want target %d", got, tg.ID)
			}
			for _, c := range []struct {
				name string
				got  *farmapi.ClosureDiff
				want want
			}{{farmapi.AgainstCurrent, got.Current, tt.current}, {farmapi.AgainstPrevious, got.Previous, tt.previous}} {
				if c.got == nil {
					t.Errorf("%s: no diff", c.name)
					continue
				}
				if c.got.Against != c.name || c.got.BasePath != paths[c.want.basePath] || c.got.BaseCommit != commits[c.want.baseCommit] {
					t.Errorf("%s: against %s %q (commit %q), want %q (commit %q)", c.name, c.got.Against, c.got.BasePath, c.got.BaseCommit,
						paths[c.want.basePath], commits[c.want.baseCommit])
				}
				if c.want.errText != "" {
					if !strings.Contains(c.got.Error, c.want.errText) || c.got.Summary != "" || len(c.got.Packages) != 0 {
						t.Errorf("%s: %+v, want a failed diff saying %q", c.name, c.got, c.want.errText)
					}
					continue
				}
				if c.got.Error != "" {
					t.Errorf("%s: failed: %s", c.name, c.got.Error)
					continue
				}
				if g := pkgChanges(c.got); strings.Join(g, "; ") != strings.Join(c.want.changes, "; ") {
					t.Errorf("%s: changes %q, want %q", c.name, g, c.want.changes)
				}
				// What a host holding the base downloads: the new paths,
				// at their compressed sizes in the cache.
				base := map[string]bool{}
				if c.got.BasePath != "" {
					for p := range h.built[c.got.BasePath] {
						base[p] = true
					}
				}
				var paths int
				var bytes uint64
				for p, size := range h.built[tg.OutPath] {
					if !base[p] {
						paths++
						bytes += fileSize(size)
					}
				}
				if c.got.Download != (farmapi.Download{Paths: paths, Bytes: bytes}) {
					t.Errorf("%s: download %+v, want %d paths, %d bytes", c.name, c.got.Download, paths, bytes)
				}
				if !strings.HasPrefix(c.got.Summary, "+") || !strings.Contains(c.got.Summary, " · ") || c.got.Headline == "" {
					t.Errorf("%s: summary %q, headline %q", c.name, c.got.Summary, c.got.Headline)
				}
			}
			// The table cell shows the previous diff's summary.
			sums, err := pipeline.CellSummaries(ctx, h.st, []int64{tg.ID})
			if err != nil || sums[tg.ID] != got.Previous.Summary {
				t.Errorf("CellSummaries = %v, %v; want %q", sums, err, got.Previous.Summary)
			}
		})
	}
}

// TestDiffEvents: a failure names the host's last good build and what it
// changed; a new desired closure carries what it changes on the host.
func TestDiffEvents(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.process(t, h.job(h.commit(t, map[string]fleetHost{"stolas": {Version: "1", Packages: map[string]string{"linux": "6.12.9"}}}, "c1")))
	if err := h.st.Report(ctx, "stolas", h.host(t, "stolas").DesiredPath, string(farmapi.ResultSwitched), ""); err != nil {
		t.Fatal(err)
	}
	j2 := h.job(h.commit(t, map[string]fleetHost{"stolas": {Version: "2", Packages: map[string]string{"linux": "6.12.10"}}}, "c2"))
	h.process(t, j2)
	good := h.targets(t, j2.ID)["stolas"]
	j3 := h.job(h.commit(t, map[string]fleetHost{"stolas": {Version: "3", Fail: true, Packages: map[string]string{"linux": "6.12.11"}}}, "c3"))
	h.process(t, j3)

	var failed farmapi.TargetData
	var desired []farmapi.HostDesiredData
	for _, ev := range h.events(t) {
		switch farmapi.EventType(ev.Type) {
		case farmapi.TargetFailed:
			if err := json.Unmarshal(ev.Data, &failed); err != nil {
				t.Fatal(err)
			}
		case farmapi.HostDesired:
			var d farmapi.HostDesiredData
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				t.Fatal(err)
			}
			desired = append(desired, d)
		}
	}
	want := farmapi.LastGood{Target: good.ID, Commit: j2.Commit, Change: "linux 6.12.9 → 6.12.10"}
	if failed.LastGood == nil || *failed.LastGood != want {
		t.Errorf("target.failed last_good = %+v, want %+v", failed.LastGood, want)
	}
	if len(desired) != 2 {
		t.Fatalf("%d host.desired events, want 2", len(desired))
	}
	// Nothing reported yet at the first deploy: all of it is new.
	if d := desired[0].Diff; d == nil || d.Against != farmapi.AgainstCurrent || !strings.HasPrefix(d.Summary, "+2 ~0 -0 · ") {
		t.Errorf("first host.desired diff = %+v, want everything added", d)
	}
	if d := desired[1].Diff; d == nil || d.Target != good.ID || !strings.HasPrefix(d.Summary, "+0 ~1 -0 · ") || d.Headline != "linux 6.12.9 → 6.12.10" {
		t.Errorf("second host.desired diff = %+v, want linux changed", d)
	}
}

// TestTargetDiffNotFound: an unknown target is state.ErrNotFound; a target
// without diffs has null ones.
func TestTargetDiffNotFound(t *testing.T) {
	h := newHarness(t)
	if _, err := pipeline.TargetDiff(context.Background(), h.st, 4242); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("TargetDiff(unknown) = %v, want ErrNotFound", err)
	}
	j := h.job(h.commit(t, map[string]fleetHost{"alpha": {Version: "1", Fail: true}}, "c1"))
	h.process(t, j)
	d := h.diffOf(t, j, "alpha")
	if d.Current != nil || d.Previous != nil || d.State != state.TargetFailed {
		t.Errorf("failed target's diff = %+v, want none", d)
	}
	b, _ := json.Marshal(d)
	if !strings.Contains(string(b), `"current":null`) || !strings.Contains(string(b), `"previous":null`) {
		t.Errorf("JSON %s, want null diffs", b)
	}
}

// TestClosureDiffShape: the API's ClosureDiff carries closurediff.Diff
// under the same JSON names, so a diff survives the trip through the
// state and the API whole.
func TestClosureDiffShape(t *testing.T) {
	old := closurediff.Closure{
		"/nix/store/00000000000000000000000000000001-linux-6.12.9":   {NarSize: 9000},
		"/nix/store/00000000000000000000000000000002-foo-1.0":        {NarSize: 100},
		"/nix/store/00000000000000000000000000000003-zlib-1.3":       {NarSize: 50},
		"/nix/store/00000000000000000000000000000004-hello-2.12":     {NarSize: 70},
		"/nix/store/00000000000000000000000000000005-hello-2.12-man": {NarSize: 7},
	}
	cur := closurediff.Closure{
		"/nix/store/00000000000000000000000000000006-linux-6.12.10": {NarSize: 9100, FileSize: 3000},
		"/nix/store/00000000000000000000000000000003-zlib-1.3":      {NarSize: 50},
		"/nix/store/00000000000000000000000000000007-foo-0.9":       {NarSize: 90, FileSize: 30},
		"/nix/store/00000000000000000000000000000008-bar-2":         {NarSize: 10},
	}
	want := closurediff.Compute(old, cur)
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var api farmapi.ClosureDiff
	if err := json.Unmarshal(b, &api); err != nil {
		t.Fatal(err)
	}
	b, err = json.Marshal(api)
	if err != nil {
		t.Fatal(err)
	}
	var got closurediff.Diff
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) || len(got.Packages) != 4 || got.Download.Unknown != 1 {
		t.Errorf("after the trip: %+v\nwant %+v", got, want)
	}
}
