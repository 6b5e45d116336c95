package pipeline_test

import (
	"encoding/json"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/state"
)

// TestEventPayloads: the events of a deploy carry exactly the fields the
// notifier and the dashboard read, zeros and empty strings included, and
// the deploy branch of the other remotes is moved to the deployed commit.
func TestEventPayloads(t *testing.T) {
	h := newHarness(t)
	other := filepath.Join(t.TempDir(), "other.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", other).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	h.p.SyncRemotes = func(job queue.Job) []string { return []string{job.Remotes[0].URL, other} }
	c := h.commit(t, map[string]fleetHost{
		"alpha":  {Version: "1"},
		"broken": {Broken: "attribute 'x' missing"},
		"mac":    {System: "aarch64-darwin", Version: "1"},
	}, "fleet")
	j := h.job(c)
	h.process(t, j)

	targetKeys := []string{"eval", "target", "host", "system", "out_path", "state", "reason"}
	want := map[string][]string{ // "<type> <host>" -> the payload's keys
		"evaluation.started":    {"eval", "repo", "branch", "commit", "resumed"},
		"target.failed broken":  targetKeys,
		"target.skipped mac":    targetKeys,
		"target.building alpha": targetKeys,
		"target.built alpha":    targetKeys,
		"host.desired alpha":    {"host", "store_path", "commit", "seq", "diff"},
		"remote.synced":         {"repo", "remote", "branch", "commit"},
		"evaluation.finished":   {"eval", "repo", "branch", "commit", "resumed", "state", "failed", "hosts"},
	}
	got := map[string]map[string]any{}
	for _, ev := range h.events(t) {
		var d map[string]any
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatalf("%s %s: %v", ev.Type, ev.Data, err)
		}
		key := ev.Type
		if host, ok := d["host"].(string); ok {
			key += " " + host
		}
		if _, dup := got[key]; dup {
			t.Errorf("two %s events", key)
		}
		got[key] = d
	}
	if g, w := slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)); !slices.Equal(g, w) {
		t.Fatalf("events %q, want %q", g, w)
	}
	for key, keys := range want {
		if g := slices.Sorted(maps.Keys(got[key])); !slices.Equal(g, slices.Sorted(slices.Values(keys))) {
			t.Errorf("%s has fields %q, want %q", key, g, slices.Sorted(slices.Values(keys)))
		}
	}
	ev, err := h.st.EvaluationByJob(t.Context(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	for key, fields := range map[string]map[string]any{
		"evaluation.started":    {"eval": float64(ev.ID), "repo": "homelab", "branch": "main", "commit": c, "resumed": false},
		"evaluation.finished":   {"state": state.EvalFailed, "failed": float64(1), "hosts": float64(3), "resumed": false},
		"target.failed broken":  {"state": state.TargetFailed, "reason": "evaluation failed: attribute 'x' missing", "out_path": "", "system": ""},
		"target.building alpha": {"state": state.TargetBuilding, "reason": "", "out_path": storePath("alpha", "1", "out")},
		"target.skipped mac":    {"reason": "no builder for aarch64-darwin", "system": "aarch64-darwin"},
		"host.desired alpha":    {"store_path": storePath("alpha", "1", "out"), "commit": c, "seq": float64(1)},
		"remote.synced":         {"repo": "homelab", "remote": other, "branch": "main", "commit": c},
	} {
		for f, w := range fields {
			if g := got[key][f]; g != w {
				t.Errorf("%s %s = %#v, want %#v", key, f, g, w)
			}
		}
	}
	if out, err := exec.Command("git", "-C", other, "rev-parse", "main").Output(); err != nil || strings.TrimSpace(string(out)) != c {
		t.Errorf("main on the other remote = %s (%v), want %s", out, err, c)
	}

	// The same job again (a worker died after this): its evaluation resumes.
	h.process(t, j)
	evs := h.events(t)
	var resumed []bool
	for _, ev := range evs {
		if ev.Type == string(farmapi.EvalStarted) {
			var d farmapi.EvalData
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				t.Fatal(err)
			}
			resumed = append(resumed, d.Resumed)
		}
	}
	if !slices.Equal(resumed, []bool{false, true}) {
		t.Errorf("evaluation.started resumed = %v, want [false true]", resumed)
	}
}
