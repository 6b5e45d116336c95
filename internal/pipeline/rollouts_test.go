package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/rollout"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/testenv"
)

// statusLog records every commit status sent, in order.
type statusLog struct {
	mu  sync.Mutex
	got []forge.Status
}

func (s *statusLog) SetStatus(_ context.Context, _, _ string, st forge.Status) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, st)
	return nil
}

func (s *statusLog) states(context string) []forge.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []forge.State
	for _, st := range s.got {
		if st.Context == context {
			out = append(out, st.State)
		}
	}
	return out
}

// last is the newest status sent in context.
func (s *statusLog) last(context string) forge.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.got) - 1; i >= 0; i-- {
		if s.got[i].Context == context {
			return s.got[i]
		}
	}
	return forge.Status{}
}

// fleetWaves: a canary, two servers after it (the three agents in
// waves 0, 1, 1); andras does not hold its wave while asleep.
var fleetWaves = map[string]nix.DeploySettings{
	"stolas": {Wave: 0, Asleep: "wait"},
	"andras": {Wave: 1, Asleep: "skip"},
	"bael":   {Wave: 1, Asleep: "wait"},
}

// commitID is a made-up full commit id for a label ("c1" -> "c1c1…").
func commitID(label string) string { return strings.Repeat(label, 40)[:40] }

// rolloutEnv drives pipeline.Rollouts with a real state (SQLite), a real
// file cache, a key signer and a clock of its own; agents are simulated
// by what they record and report.
type rolloutEnv struct {
	t      *testing.T
	st     *state.Store
	cache  cache.Backend
	key    cache.SecretKey
	r      *pipeline.Rollouts
	forge  *statusLog
	now    time.Time
	t0     time.Time
	nextID int64
}

func newRolloutEnv(t *testing.T) *rolloutEnv {
	t.Helper()
	_, st, b := openStateAndCache(t)
	key, _ := cache.GenerateKey("farm-test-deploy-1")
	e := &rolloutEnv{t: t, st: st, cache: b, key: key, forge: &statusLog{}}
	// Behind the wall clock, which the state stamps reports with (a host's
	// last seen): the steps' times stay in the past of every report.
	e.t0 = time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Minute)
	e.now = e.t0
	e.r = &pipeline.Rollouts{
		State: st, Signer: deploy.KeySigner{Key: key}, Cache: b, CacheURL: "http://127.0.0.1:1/nix-cache",
		Config:   rollout.Config{GateTimeout: 30 * time.Minute},
		Statuses: &pipeline.Statuses{For: func(queue.Remote) forge.StatusClient { return e.forge }},
		Now:      func() time.Time { return e.now },
	}
	return e
}

// push evaluates commit label with every host at that version ("c3=c1":
// commit c3 with c1's closures), pushes the closures to the cache and
// starts its rollout.
func (e *rolloutEnv) push(arg string) error {
	t := e.t
	ctx := context.Background()
	e.nextID++
	label, version, ok := strings.Cut(arg, "=")
	if !ok {
		version = label
	}
	commit := commitID(label)
	ev, _, err := e.st.StartEvaluation(ctx, state.Evaluation{JobID: e.nextID, Repo: "homelab", Branch: "main", Commit: commit, Deploy: true})
	if err != nil {
		t.Fatal(err)
	}
	var recs []state.Target
	for _, host := range slices.Sorted(maps.Keys(fleetWaves)) {
		out := storePath(host, version, "out")
		if _, err := publish(ctx, e.cache, out); err != nil {
			t.Fatal(err)
		}
		tg, err := e.st.PutTarget(ctx, state.Target{EvalID: ev.ID, Host: host, System: "x86_64-linux", OutPath: out, State: state.TargetBuilt})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, tg)
	}
	if err := e.st.FinishEvaluation(ctx, ev.ID, state.EvalDone, "", ""); err != nil {
		t.Fatal(err)
	}
	job := queue.Job{ID: e.nextID, Repo: "homelab", Branch: "main", Commit: commit, Deploy: true,
		Remotes: []queue.Remote{{Forge: "github", URL: "https://github.com/rain/homelab", FullName: "rain/homelab"}}}
	_, _, err = e.r.Start(ctx, pipeline.Push{Job: job, Targets: recs, Settings: fleetWaves})
	return err
}

// report is host's agent acting on its manifest with result, as the server
// records and hands it on.
func (e *rolloutEnv) report(host string, result farmapi.Result) error {
	ctx := context.Background()
	h, err := e.st.Host(ctx, host)
	if err != nil {
		e.t.Fatalf("%s reports without a manifest: %v", host, err)
	}
	rep := farmapi.Report{Result: result, Seq: h.DesiredSeq, Current: h.CurrentPath}
	switch result {
	case farmapi.ResultSwitched, farmapi.ResultUpToDate:
		rep.Current = h.DesiredPath
	case farmapi.ResultFailed, farmapi.ResultRolledBack:
		rep.Reason = "health check failed"
	}
	if err := e.st.Report(ctx, host, rep.Current, string(rep.Result), rep.Reason); err != nil {
		e.t.Fatal(err)
	}
	return e.r.Report(ctx, host, rep)
}

// desired is the commit label whose closure each host wants, "" for none.
func (e *rolloutEnv) desired() map[string]string {
	out := map[string]string{}
	for host := range fleetWaves {
		h, err := e.st.Host(context.Background(), host)
		if errors.Is(err, state.ErrNotFound) {
			out[host] = ""
			continue
		}
		if err != nil {
			e.t.Fatal(err)
		}
		out[host] = "?"
		for _, label := range []string{"c1", "c2", "c3"} {
			if h.DesiredPath == storePath(host, label, "out") && h.DesiredCommit == commitID(label) {
				out[host] = label
			}
		}
	}
	return out
}

// latest is the newest rollout.
func (e *rolloutEnv) latest() state.Rollout {
	rs, err := e.st.Rollouts(context.Background(), "homelab", 1)
	if err != nil || len(rs) == 0 {
		e.t.Fatalf("no rollout: %v", err)
	}
	return rs[0]
}

func (e *rolloutEnv) events(typ farmapi.EventType) []state.Event {
	evs, err := e.st.EventsAfter(context.Background(), 0, 10000)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []state.Event
	for _, ev := range evs {
		if ev.Type == string(typ) {
			out = append(out, ev)
		}
	}
	return out
}

// seqs are the seqs of host's manifests, in order.
func (e *rolloutEnv) seqs(host string) []uint64 {
	var out []uint64
	for _, ev := range e.events(farmapi.HostDesired) {
		var d farmapi.HostDesiredData
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			e.t.Fatal(err)
		}
		if d.Host == host {
			out = append(out, d.Seq)
		}
	}
	return out
}

// rstep is one thing that happens to the fleet, and what must hold after.
type rstep struct {
	min     int    // minutes after the start
	do      string // push, report, tick, resume, abort, rollback, uncache
	arg     string // commit label (push, rollback, uncache) or host (report)
	result  farmapi.Result
	hosts   []string
	wantErr error
	desired map[string]string // by host: the commit label whose closure it wants
	status  rollout.Status    // of the newest rollout
}

// step sets the clock to s's minute and does s, the i-th step.
func (e *rolloutEnv) step(i int, s rstep) error {
	ctx := context.Background()
	e.now = e.t0.Add(time.Duration(s.min) * time.Minute)
	var err error
	switch s.do {
	case "push":
		err = e.push(s.arg)
	case "report":
		err = e.report(s.arg, s.result)
	case "tick":
		err = e.r.Tick(ctx, e.now)
	case "resume":
		_, err = e.r.Resume(ctx, e.latest().ID)
	case "abort":
		_, err = e.r.Abort(ctx, e.latest().ID, "")
	case "rollback":
		_, err = e.r.Rollback(ctx, farmapi.RollbackRequest{To: commitID(s.arg)[:10], Hosts: s.hosts})
	case "uncache":
		for _, h := range s.hosts {
			if err := e.cache.Delete(ctx, cache.NarInfoKey(storePath(h, s.arg, "out"))); err != nil {
				e.t.Fatal(err)
			}
		}
	default:
		e.t.Fatalf("step %d: unknown action %q", i, s.do)
	}
	return err
}

func TestRollouts(t *testing.T) {
	sw, failed := farmapi.ResultSwitched, farmapi.ResultFailed
	canaryC1 := map[string]string{"stolas": "c1", "andras": "", "bael": ""}
	allC1 := map[string]string{"stolas": "c1", "andras": "c1", "bael": "c1"}
	// c1 rolled out everywhere, every host on it.
	c1Done := []rstep{
		{do: "push", arg: "c1", desired: canaryC1, status: "progressing"},
		{min: 1, do: "report", arg: "stolas", result: sw, desired: allC1, status: "progressing"},
		{min: 2, do: "report", arg: "andras", result: sw, desired: allC1, status: "progressing"},
		{min: 3, do: "report", arg: "bael", result: sw, desired: allC1, status: "complete"},
	}
	tests := []struct {
		name     string
		steps    []rstep
		halts    int // rollout.halted events in the end
		failures int // farm/rollout failure statuses in the end
		setup    func(e *rolloutEnv)
		after    func(t *testing.T, e *rolloutEnv)
	}{
		{
			name: "wave-1 hosts get nothing until the canary reports",
			steps: []rstep{
				{do: "push", arg: "c1", desired: canaryC1, status: "progressing"},
				{min: 5, do: "tick", desired: canaryC1, status: "progressing"},
				{min: 6, do: "report", arg: "stolas", result: farmapi.ResultWaiting, desired: canaryC1, status: "progressing"},
				{min: 7, do: "report", arg: "stolas", result: farmapi.ResultInstalled, desired: allC1, status: "progressing"},
				{min: 8, do: "report", arg: "andras", result: sw, desired: allC1, status: "progressing"},
				{min: 9, do: "report", arg: "bael", result: farmapi.ResultUpToDate, desired: allC1, status: "complete"},
			},
		},
		{
			name: "a failed canary halts: wave 1 keeps its closure, one halt event, one failure status",
			steps: append(slices.Clone(c1Done),
				rstep{min: 10, do: "push", arg: "c2", desired: map[string]string{"stolas": "c2", "andras": "c1", "bael": "c1"}, status: "progressing"},
				rstep{min: 11, do: "report", arg: "stolas", result: failed, desired: map[string]string{"stolas": "c2", "andras": "c1", "bael": "c1"}, status: "halted"},
				rstep{min: 12, do: "report", arg: "stolas", result: failed, desired: map[string]string{"stolas": "c2", "andras": "c1", "bael": "c1"}, status: "halted"},
				rstep{min: 60, do: "tick", desired: map[string]string{"stolas": "c2", "andras": "c1", "bael": "c1"}, status: "halted"},
			),
			halts: 1, failures: 1,
			after: func(t *testing.T, e *rolloutEnv) {
				h := e.events(farmapi.RolloutHalted)
				var d farmapi.RolloutHaltedData
				if err := json.Unmarshal(h[0].Data, &d); err != nil {
					t.Fatal(err)
				}
				if d.Host != "stolas" || d.Reason != "failed" || d.Wave != 0 || d.Commit != commitID("c2") {
					t.Errorf("halt event %+v, want stolas failed in wave 0 of c2", d)
				}
			},
		},
		{
			name: "a canary that rolled back halts",
			steps: []rstep{
				{do: "push", arg: "c1", desired: canaryC1, status: "progressing"},
				{min: 1, do: "report", arg: "stolas", result: farmapi.ResultRolledBack, desired: canaryC1, status: "halted"},
			},
			halts: 1, failures: 1,
		},
		{
			name: "resume after a halt offers the next wave",
			steps: []rstep{
				{do: "push", arg: "c1", desired: canaryC1, status: "progressing"},
				{min: 1, do: "report", arg: "stolas", result: failed, desired: canaryC1, status: "halted"},
				{min: 2, do: "resume", desired: allC1, status: "progressing"},
				{min: 3, do: "resume", wantErr: rollout.ErrNotHalted, desired: allC1, status: "progressing"},
				{min: 4, do: "report", arg: "andras", result: sw, desired: allC1, status: "progressing"},
				{min: 5, do: "report", arg: "bael", result: sw, desired: allC1, status: "complete"},
			},
			halts: 1, failures: 1,
		},
		{
			name: "abort ends it: the next wave never gets its manifests",
			steps: []rstep{
				{do: "push", arg: "c1", desired: canaryC1, status: "progressing"},
				{min: 1, do: "report", arg: "stolas", result: failed, desired: canaryC1, status: "halted"},
				{min: 2, do: "abort", desired: canaryC1, status: "aborted"},
				{min: 3, do: "report", arg: "stolas", result: sw, desired: canaryC1, status: "aborted"},
				{min: 4, do: "resume", wantErr: rollout.ErrNotHalted, desired: canaryC1, status: "aborted"},
				{min: 5, do: "abort", wantErr: rollout.ErrEnded, desired: canaryC1, status: "aborted"},
			},
			halts: 1, failures: 1,
		},
		{
			name: "a wave not done within the gate timeout halts at the tick",
			steps: []rstep{
				{do: "push", arg: "c1", desired: canaryC1, status: "progressing"},
				{min: 29, do: "tick", desired: canaryC1, status: "progressing"},
				{min: 30, do: "tick", desired: canaryC1, status: "halted"},
				{min: 31, do: "tick", desired: canaryC1, status: "halted"},
			},
			halts: 1, failures: 1,
		},
		{
			name:  "an offered host silent past AsleepAfter with policy skip does not hold its wave",
			setup: func(e *rolloutEnv) { e.r.AsleepAfter = 10 * time.Minute },
			steps: []rstep{
				{do: "push", arg: "c1", desired: canaryC1, status: "progressing"},
				{min: 1, do: "report", arg: "stolas", result: sw, desired: allC1, status: "progressing"},
				{min: 5, do: "report", arg: "bael", result: sw, desired: allC1, status: "progressing"},
				{min: 10, do: "tick", desired: allC1, status: "progressing"},
				{min: 11, do: "tick", desired: allC1, status: "complete"},
			},
			after: func(t *testing.T, e *rolloutEnv) {
				if h := e.latest().State.Hosts["andras"]; !h.Skipped {
					t.Errorf("andras %+v, want passed over asleep (skipped), to be woken", h)
				}
				// One wake, for andras' manifest, however many ticks follow.
				wakes := e.events(farmapi.HostWake)
				var w farmapi.HostWakeData
				if len(wakes) != 1 || json.Unmarshal(wakes[0].Data, &w) != nil || w.Host != "andras" || w.Seq != e.seqs("andras")[len(e.seqs("andras"))-1] {
					t.Errorf("host.wake events %+v, want one for andras' last manifest %v", wakes, e.seqs("andras"))
				}
			},
		},
		{
			name:  "an offered host that reported lately is not asleep",
			setup: func(e *rolloutEnv) { e.r.AsleepAfter = 10 * time.Minute },
			steps: []rstep{
				{do: "push", arg: "c1", desired: canaryC1, status: "progressing"},
				{min: 1, do: "report", arg: "stolas", result: sw, desired: allC1, status: "progressing"},
				{min: 2, do: "report", arg: "andras", result: farmapi.ResultWaiting, desired: allC1, status: "progressing"},
				{min: 5, do: "report", arg: "bael", result: sw, desired: allC1, status: "progressing"},
				{min: 20, do: "tick", desired: allC1, status: "progressing"},
				{min: 31, do: "tick", desired: allC1, status: "halted"},
			},
			halts: 1, failures: 1,
		},
		{
			name: "a newer commit supersedes the active rollout; the old one offers nothing more",
			steps: []rstep{
				{do: "push", arg: "c1", desired: canaryC1, status: "progressing"},
				{min: 1, do: "push", arg: "c2", desired: map[string]string{"stolas": "c2", "andras": "", "bael": ""}, status: "progressing"},
				{min: 2, do: "report", arg: "stolas", result: sw, desired: map[string]string{"stolas": "c2", "andras": "c2", "bael": "c2"}, status: "progressing"},
				{min: 3, do: "push", arg: "c2", desired: map[string]string{"stolas": "c2", "andras": "c2", "bael": "c2"}, status: "progressing"}, // a retried job
			},
			after: func(t *testing.T, e *rolloutEnv) {
				rs, err := e.st.Rollouts(context.Background(), "homelab", 10)
				if err != nil || len(rs) != 2 {
					t.Fatalf("rollouts %d, %v; want 2 (a retried job starts none)", len(rs), err)
				}
				if old := rs[1].State; old.Status != rollout.StatusSuperseded || old.SupersededBy != commitID("c2") {
					t.Errorf("c1's rollout %s by %s, want superseded by c2", old.Status, old.SupersededBy)
				}
				if active, _ := e.st.ActiveRollouts(context.Background()); len(active) != 1 || active[0].ID != rs[0].ID {
					t.Errorf("active rollouts %d, want only c2's", len(active))
				}
			},
		},
		{
			name: "hosts already on the closure pass at once",
			steps: append(slices.Clone(c1Done),
				// c1 again through a second evaluation of the same closures (a
				// new commit that changes nothing): every wave passes at once.
				rstep{min: 10, do: "push", arg: "c3=c1", desired: allC1, status: "complete"},
			),
		},
		{
			name: "rollback goes through the waves with higher seqs",
			steps: append(slices.Clone(c1Done),
				rstep{min: 10, do: "push", arg: "c2", desired: map[string]string{"stolas": "c2", "andras": "c1", "bael": "c1"}, status: "progressing"},
				rstep{min: 11, do: "report", arg: "stolas", result: sw, desired: map[string]string{"stolas": "c2", "andras": "c2", "bael": "c2"}, status: "progressing"},
				rstep{min: 12, do: "report", arg: "andras", result: sw, status: "progressing"},
				rstep{min: 13, do: "report", arg: "bael", result: sw, status: "complete"},
				rstep{min: 20, do: "rollback", arg: "c1", desired: map[string]string{"stolas": "c1", "andras": "c2", "bael": "c2"}, status: "progressing"},
				rstep{min: 21, do: "report", arg: "stolas", result: sw, desired: map[string]string{"stolas": "c1", "andras": "c1", "bael": "c1"}, status: "progressing"},
				rstep{min: 22, do: "report", arg: "andras", result: sw, status: "progressing"},
				rstep{min: 23, do: "report", arg: "bael", result: sw, status: "complete"},
			),
			after: func(t *testing.T, e *rolloutEnv) {
				ro := e.latest()
				if ro.State.Kind != rollout.KindRollback || ro.State.Commit != commitID("c1") {
					t.Errorf("newest rollout %s of %.7s, want a rollback to c1", ro.State.Kind, ro.State.Commit)
				}
				for host := range fleetWaves {
					seqs := e.seqs(host)
					if len(seqs) != 3 || !slices.IsSorted(seqs) || seqs[2] == seqs[1] {
						t.Errorf("%s seqs %v, want three growing (c1, c2, back to c1)", host, seqs)
					}
					h, _ := e.st.Host(context.Background(), host)
					var s deploy.Signed
					if err := json.Unmarshal(h.Manifest, &s); err != nil {
						t.Fatal(err)
					}
					m, err := deploy.Verify(s, []cache.PublicKey{e.key.Public()}, host, e.now, 0)
					if err != nil || m.Seq != seqs[2] || m.StorePath != storePath(host, "c1", "out") {
						t.Errorf("%s manifest %+v, %v; want seq %d for c1's closure", host, m, err, seqs[2])
					}
				}
			},
		},
		{
			name: "rollback of the listed hosts only",
			steps: append(slices.Clone(c1Done),
				rstep{min: 10, do: "push", arg: "c2", status: "progressing"},
				rstep{min: 11, do: "report", arg: "stolas", result: sw, status: "progressing"},
				rstep{min: 12, do: "report", arg: "andras", result: sw, status: "progressing"},
				rstep{min: 13, do: "report", arg: "bael", result: sw, desired: map[string]string{"stolas": "c2", "andras": "c2", "bael": "c2"}, status: "complete"},
				rstep{min: 20, do: "rollback", arg: "c1", hosts: []string{"bael"}, desired: map[string]string{"stolas": "c2", "andras": "c2", "bael": "c1"}, status: "progressing"},
			),
		},
		{
			name: "rollback to a closure no longer in the cache is refused",
			steps: append(slices.Clone(c1Done),
				rstep{min: 10, do: "push", arg: "c2", status: "progressing"},
				rstep{min: 11, do: "uncache", arg: "c1", hosts: []string{"andras"}, status: "progressing"},
				rstep{min: 12, do: "rollback", arg: "c1", wantErr: pipeline.ErrClosureMissing, desired: map[string]string{"stolas": "c2", "andras": "c1", "bael": "c1"}, status: "progressing"},
				rstep{min: 13, do: "rollback", arg: "c1", hosts: []string{"bael", "stolas"}, desired: map[string]string{"stolas": "c1", "andras": "c1", "bael": "c1"}, status: "progressing"},
			),
		},
		{
			name: "rollback to a commit never deployed, or of an unknown host, is refused",
			steps: append(slices.Clone(c1Done),
				rstep{min: 10, do: "rollback", arg: "c3", wantErr: pipeline.ErrRollbackRefused, desired: allC1, status: "complete"},
				rstep{min: 11, do: "rollback", arg: "c1", hosts: []string{"nosuchhost"}, wantErr: pipeline.ErrRollbackRefused, desired: allC1, status: "complete"},
				rstep{min: 12, do: "rollback", arg: "c1", hosts: []string{"../x"}, wantErr: pipeline.ErrRollbackRefused, desired: allC1, status: "complete"},
			),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newRolloutEnv(t)
			if tt.setup != nil {
				tt.setup(e)
			}
			for i, s := range tt.steps {
				err := e.step(i, s)
				if !errors.Is(err, s.wantErr) || (err != nil && s.wantErr == nil) {
					t.Fatalf("step %d (%s %s at %d min): error %v, want %v", i, s.do, s.arg, s.min, err, s.wantErr)
				}
				if s.desired != nil {
					if got := e.desired(); fmt.Sprint(got) != fmt.Sprint(s.desired) {
						t.Errorf("step %d (%s %s): hosts want %v, want %v", i, s.do, s.arg, got, s.desired)
					}
				}
				if got := e.latest().State.Status; s.status != "" && got != s.status {
					t.Errorf("step %d (%s %s): rollout %s, want %s", i, s.do, s.arg, got, s.status)
				}
			}
			if got := len(e.events(farmapi.RolloutHalted)); got != tt.halts {
				t.Errorf("%d halt events, want %d", got, tt.halts)
			}
			failures := 0
			for _, st := range e.forge.states("farm/rollout") {
				if st == forge.StateFailure {
					failures++
				}
			}
			if failures != tt.failures {
				t.Errorf("%d failure statuses for the rollout (%v), want %d", failures, e.forge.states("farm/rollout"), tt.failures)
			}
			if tt.after != nil {
				tt.after(t, e)
			}
		})
	}
}

// TestDeployRollsOut: with Rollouts set, a deploy-branch push through the
// pipeline is rolled out with the waves the flake declares at that commit:
// the canary's manifest is signed, the next wave's is not until it
// reports, and a host the flake does not list is not deployed.
func TestDeployRollsOut(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	var flakes []string
	h.p.Rollouts = &pipeline.Rollouts{
		State: h.st, Signer: deploy.KeySigner{Key: h.key}, Cache: h.cache, CacheURL: h.p.CacheURL,
		Settings: func(_ context.Context, flake string) (map[string]nix.DeploySettings, error) {
			flakes = append(flakes, flake)
			return map[string]nix.DeploySettings{"alpha": {Wave: 0}, "beta": {Wave: 1}}, nil
		},
	}
	c1 := h.commit(t, map[string]fleetHost{"alpha": {Version: "1"}, "beta": {Version: "1"}, "pulled": {Version: "1"}}, "c1")
	h.process(t, h.job(c1))
	if len(flakes) != 1 || !strings.Contains(flakes[0], c1) {
		t.Errorf("farm.deploy read from %v, want the flake at %.7s", flakes, c1)
	}
	if m := h.manifest(t, "alpha"); m.Commit != c1 || m.StorePath != storePath("alpha", "1", "out") {
		t.Errorf("canary manifest %+v, want c1's closure", m)
	}
	for _, host := range []string{"beta", "pulled"} {
		if got := h.host(t, host); got.DesiredPath != "" {
			t.Errorf("%s wants %s before the canary reported; want nothing", host, got.DesiredPath)
		}
	}
	a := h.host(t, "alpha")
	if err := h.st.Report(ctx, "alpha", a.DesiredPath, string(farmapi.ResultSwitched), ""); err != nil {
		t.Fatal(err)
	}
	if err := h.p.Rollouts.Report(ctx, "alpha", farmapi.Report{Current: a.DesiredPath, Result: farmapi.ResultSwitched, Seq: a.DesiredSeq}); err != nil {
		t.Fatal(err)
	}
	if m := h.manifest(t, "beta"); m.Commit != c1 || m.Seq <= a.DesiredSeq {
		t.Errorf("wave 1 manifest %+v after the canary switched, want c1's with a higher seq than %d", m, a.DesiredSeq)
	}
	if got := h.host(t, "pulled"); got.DesiredPath != "" {
		t.Errorf("a host farm.deploy does not list was deployed: %+v", got)
	}

	// Reading the waves fails: the job fails (and is retried), nothing is deployed.
	h.p.Rollouts.Settings = func(context.Context, string) (map[string]nix.DeploySettings, error) {
		return nil, errors.New("nix eval: out of memory")
	}
	c2 := h.commit(t, map[string]fleetHost{"alpha": {Version: "2"}, "beta": {Version: "2"}}, "c2")
	if _, err := h.p.Process(ctx, h.job(c2)); err == nil || !strings.Contains(err.Error(), "out of memory") {
		t.Fatalf("Process with farm.deploy unreadable = %v, want its error", err)
	}
	if m := h.manifest(t, "alpha"); m.Commit != c1 {
		t.Errorf("alpha got %.7s with the waves unreadable, want c1 kept", m.Commit)
	}

	// A rollback of every host to c1 is one of the hosts c1's rollout had,
	// not of every host c1 built; it supersedes c1's rollout.
	ro, err := h.p.Rollouts.Rollback(ctx, farmapi.RollbackRequest{To: c1})
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, tg := range ro.State.Targets {
		hosts = append(hosts, tg.Host)
	}
	if want := []string{"alpha", "beta"}; !slices.Equal(hosts, want) || ro.State.Kind != rollout.KindRollback {
		t.Errorf("rollback of %s to %v, want a rollback to %v", ro.State.Kind, hosts, want)
	}
	if active, _ := h.st.ActiveRollouts(ctx); len(active) != 1 || active[0].ID != ro.ID {
		t.Errorf("%d active rollouts, want only the rollback", len(active))
	}
}

// TestRolloutsSharedPostgres: two builders on one PostgreSQL get the
// canary's report and tick at the same moments; each wave is offered once
// (one manifest per host), and a timeout halts once (one event, one
// failure status).
func TestRolloutsSharedPostgres(t *testing.T) {
	ctx := context.Background()
	_, dsn := testenv.PostgresSchema(t, "rollouts")
	e := newRolloutEnv(t)
	var builders []*pipeline.Rollouts
	for range 2 {
		st, err := state.OpenPostgres(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		r := *e.r
		r.State = st
		builders = append(builders, &r)
	}
	// The env's helpers work on the first builder's database.
	e.st.Close()
	e.st = builders[0].State.(*state.Store)
	e.r = builders[0]

	e.now = e.t0
	if err := e.push("c1"); err != nil {
		t.Fatal(err)
	}
	e.now = e.t0.Add(time.Minute)
	h, err := e.st.Host(ctx, "stolas")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.Report(ctx, "stolas", h.DesiredPath, string(farmapi.ResultSwitched), ""); err != nil {
		t.Fatal(err)
	}
	rep := farmapi.Report{Current: h.DesiredPath, Result: farmapi.ResultSwitched, Seq: h.DesiredSeq}
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			if err := builders[i%2].Report(ctx, "stolas", rep); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, host := range []string{"andras", "bael"} {
		if seqs := e.seqs(host); len(seqs) != 1 {
			t.Errorf("%s got manifests %v from two builders, want exactly one", host, seqs)
		}
	}
	if waves := e.events(farmapi.RolloutWave); len(waves) != 2 {
		t.Errorf("%d wave events, want 2 (wave 0, then wave 1 once)", len(waves))
	}

	// Wave 1 times out; both builders tick at once.
	late := e.t0.Add(time.Minute + 30*time.Minute)
	for i := range 6 {
		wg.Go(func() {
			if err := builders[i%2].Tick(ctx, late); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if halts := e.events(farmapi.RolloutHalted); len(halts) != 1 {
		t.Errorf("%d halt events from two ticking builders, want 1", len(halts))
	}
	if got := e.forge.states("farm/rollout"); slices.Index(got, forge.StateFailure) != len(got)-1 || len(got) == 0 {
		t.Errorf("rollout statuses %v, want one failure, last", got)
	}
}

// TestRolloutsSilentFleet: with the builder's defaults (gate timeout 30m,
// asleep after 2h) and agents that never report, no farm/rollout status
// stays pending: the ticker halts the wave at the gate timeout with a
// failure naming the hosts that never reported; a silent host whose
// asleep policy is "skip" is passed over by then instead of halting its
// wave; a rollout that ends anyway says who did not get there.
func TestRolloutsSilentFleet(t *testing.T) {
	type want struct {
		status   rollout.Status
		haltHost string   // of the newest halt
		last     string   // the last farm/rollout status: "state: description"
		lacks    []string // what that description must not name
	}
	tests := []struct {
		name  string
		steps []rstep
		wants map[int]want // by step
	}{
		{
			name: "nobody reports: halt at the gate, resume, halt again, resume to the end",
			steps: []rstep{
				{do: "push", arg: "c1"},
				{min: 29, do: "tick"},
				{min: 30, do: "tick"},
				{min: 45, do: "tick"},
				{min: 50, do: "resume"},
				{min: 79, do: "tick"},
				{min: 80, do: "tick"},
				{min: 81, do: "resume"},
			},
			wants: map[int]want{
				0: {status: "progressing", last: "pending: rolling out: wave 0 offered"},
				1: {status: "progressing", last: "pending: rolling out: wave 0 offered"},
				2: {status: "halted", haltHost: "stolas", last: "failure: rollout halted in wave 0: not done 30m0s after its offer; no report from stolas"},
				3: {status: "halted", haltHost: "stolas", last: "failure: rollout halted in wave 0: not done 30m0s after its offer; no report from stolas"},
				4: {status: "progressing", last: "pending: rolling out: wave 1 offered"},
				5: {status: "progressing", last: "pending: rolling out: wave 1 offered"},
				// andras (asleep = "skip") is passed over at the gate, not blamed.
				6: {status: "halted", haltHost: "bael", last: "failure: rollout halted in wave 1: not done 30m0s after its offer; no report from bael", lacks: []string{"andras"}},
				7: {status: "complete", last: "success: rolled out to 0 of 3 hosts; asleep, updated when they wake: andras; waived by an admin: stolas, bael"},
			},
		},
		{
			name: "a silent skip host does not hold the last wave: complete, and says so",
			steps: []rstep{
				{do: "push", arg: "c1"},
				{min: 1, do: "report", arg: "stolas", result: farmapi.ResultSwitched},
				{min: 2, do: "report", arg: "bael", result: farmapi.ResultSwitched},
				{min: 30, do: "tick"},
				{min: 31, do: "tick"},
			},
			wants: map[int]want{
				3: {status: "progressing", last: "pending: rolling out: wave 0 offered"},
				4: {status: "complete", last: "success: rolled out to 2 of 3 hosts; asleep, updated when they wake: andras"},
			},
		},
		{
			name: "a host that answers without switching is named apart from the silent",
			steps: []rstep{
				{do: "push", arg: "c1"},
				{min: 1, do: "report", arg: "stolas", result: farmapi.ResultSwitched},
				{min: 2, do: "report", arg: "bael", result: farmapi.ResultWaiting},
				{min: 31, do: "tick"},
			},
			wants: map[int]want{
				3: {status: "halted", haltHost: "bael", last: "failure: rollout halted in wave 1: not done 30m0s after its offer; not switched: bael (waiting for window)", lacks: []string{"andras", "no report"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newRolloutEnv(t)
			e.r.AsleepAfter = 2 * time.Hour // the builder's defaults, with the gate's 30m
			e.r.Statuses.PublicURL = "https://farm.example"
			for i, s := range tt.steps {
				err := e.step(i, s)
				if err != nil {
					t.Fatalf("step %d (%s at %d min): %v", i, s.do, s.min, err)
				}
				w, ok := tt.wants[i]
				if !ok {
					continue
				}
				ro := e.latest()
				if ro.State.Status != w.status {
					t.Errorf("step %d (%s at %d min): rollout %s, want %s", i, s.do, s.min, ro.State.Status, w.status)
				}
				if w.haltHost != "" && (ro.State.Halt == nil || ro.State.Halt.Host != w.haltHost || ro.State.Halt.Reason != rollout.HaltTimeout) {
					t.Errorf("step %d: halt %+v, want a timeout on %s", i, ro.State.Halt, w.haltHost)
				}
				st := e.forge.last("farm/rollout")
				if got := string(st.State) + ": " + st.Description; got != w.last {
					t.Errorf("step %d (%s at %d min): last status %q, want %q", i, s.do, s.min, got, w.last)
				}
				for _, bad := range w.lacks {
					if strings.Contains(st.Description, bad) {
						t.Errorf("step %d: status %q names %s", i, st.Description, bad)
					}
				}
				if want := fmt.Sprintf("https://farm.example/rollouts/%d", ro.ID); st.TargetURL != want {
					t.Errorf("status links %q, want the rollout's page %q", st.TargetURL, want)
				}
			}
			// The halt event (the notification) carries the same detail.
			for _, ev := range e.events(farmapi.RolloutHalted) {
				var d farmapi.RolloutHaltedData
				if err := json.Unmarshal(ev.Data, &d); err != nil {
					t.Fatal(err)
				}
				if d.Reason == string(rollout.HaltTimeout) && !strings.Contains(d.Detail, d.Host) {
					t.Errorf("halt event %+v does not name its host in the detail", d)
				}
			}
		})
	}
}
