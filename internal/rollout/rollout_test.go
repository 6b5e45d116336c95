package rollout_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/rollout"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

// Three hosts in waves 0, 1, 1 (the multi-host test), plus a desktop in
// wave 2 that may be asleep.
func fleet() []rollout.Target {
	return []rollout.Target{
		{Host: "stolas", Wave: 0, StorePath: "/nix/store/new-stolas"},
		{Host: "andras", Wave: 1, StorePath: "/nix/store/new-andras"},
		{Host: "bael", Wave: 1, StorePath: "/nix/store/new-bael"},
		{Host: "malphas", Wave: 2, StorePath: "/nix/store/new-malphas", Asleep: rollout.AsleepSkip},
	}
}

func rep(host string, o rollout.Outcome, min int) rollout.Report {
	return rollout.Report{Host: host, Closure: "/nix/store/new-" + host, Outcome: o, At: at(min)}
}

type step struct {
	min      int
	action   string // "" = advance, "resume", "abort"
	reports  []rollout.Report
	asleep   []string
	wantErr  error
	offer    []string
	wake     []string
	status   rollout.Status
	wave     int
	haltHost string
	haltWhy  rollout.HaltReason
}

func TestAdvance(t *testing.T) {
	sw, failed := rollout.OutcomeSwitched, rollout.OutcomeFailed
	cfg := rollout.Config{GateTimeout: 30 * time.Minute}
	tests := []struct {
		name    string
		targets []rollout.Target
		cfg     rollout.Config
		steps   []step
	}{
		{
			name: "wave 1 gets nothing until every wave-0 host reported switched and healthy",
			steps: []step{
				{min: 0, offer: []string{"stolas"}, status: "progressing", wave: 0},
				{min: 5, reports: []rollout.Report{rep("andras", sw, 4)}, status: "progressing", wave: 0},
				{min: 6, reports: []rollout.Report{rep("stolas", rollout.OutcomeInstalled, 6)}, offer: []string{"andras", "bael"}, status: "progressing", wave: 1},
			},
		},
		{
			name: "a wave of two opens the next only when both switched",
			steps: []step{
				{min: 0, offer: []string{"stolas"}, status: "progressing"},
				{min: 1, reports: []rollout.Report{rep("stolas", sw, 1)}, offer: []string{"andras", "bael"}, status: "progressing", wave: 1},
				{min: 2, reports: []rollout.Report{rep("stolas", sw, 1), rep("andras", sw, 2)}, status: "progressing", wave: 1},
				{min: 3, reports: []rollout.Report{rep("andras", sw, 2), rep("bael", sw, 3)}, offer: []string{"malphas"}, status: "progressing", wave: 2},
				{min: 4, reports: []rollout.Report{rep("malphas", sw, 4)}, status: "complete", wave: 2},
				{min: 5, reports: []rollout.Report{rep("malphas", failed, 5)}, status: "complete", wave: 2},
			},
		},
		{
			name: "a failed canary halts; later waves keep their closure",
			steps: []step{
				{min: 0, offer: []string{"stolas"}, status: "progressing"},
				{min: 3, reports: []rollout.Report{rep("stolas", failed, 3)}, status: "halted", haltHost: "stolas", haltWhy: "failed"},
				{min: 60, reports: []rollout.Report{rep("stolas", failed, 3)}, status: "halted", haltHost: "stolas", haltWhy: "failed"},
			},
		},
		{
			name: "a canary that rolled back halts",
			steps: []step{
				{min: 0, offer: []string{"stolas"}, status: "progressing"},
				{min: 3, reports: []rollout.Report{rep("stolas", rollout.OutcomeRolledBack, 3)}, status: "halted", haltHost: "stolas", haltWhy: "rolled back"},
			},
		},
		{
			name: "a wave not done within the gate timeout halts, naming the late host",
			steps: []step{
				{min: 0, offer: []string{"stolas"}, status: "progressing"},
				{min: 29, status: "progressing"},
				{min: 30, status: "halted", haltHost: "stolas", haltWhy: "timeout"},
			},
		},
		{
			name: "no timeout configured: a wave waits",
			cfg:  rollout.Config{},
			steps: []step{
				{min: 0, offer: []string{"stolas"}, status: "progressing"},
				{min: 600, status: "progressing"},
			},
		},
		{
			name: "a host reporting a different (older) closure does not count, even a failure",
			steps: []step{
				{min: 0, offer: []string{"stolas"}, status: "progressing"},
				{min: 2, reports: []rollout.Report{{Host: "stolas", Closure: "/nix/store/old-stolas", Outcome: sw, At: at(2)}}, status: "progressing"},
				{min: 3, reports: []rollout.Report{{Host: "stolas", Closure: "/nix/store/old-stolas", Outcome: failed, At: at(3)}}, status: "progressing"},
			},
		},
		{
			name: "a report from before the offer does not count",
			steps: []step{
				{min: 10, reports: []rollout.Report{rep("stolas", sw, 5)}, offer: []string{"stolas"}, status: "progressing"},
			},
		},
		{
			name: "asleep with skip does not hold the wave and is listed to wake; reporting later clears it",
			steps: []step{
				{min: 0, reports: []rollout.Report{rep("stolas", sw, 0)}, offer: []string{"andras", "bael", "stolas"}, status: "progressing", wave: 1},
				{min: 1, reports: []rollout.Report{rep("andras", sw, 1), rep("bael", sw, 1)}, offer: []string{"malphas"}, status: "progressing", wave: 2},
				{min: 2, asleep: []string{"malphas"}, wake: []string{"malphas"}, status: "complete", wave: 2},
				{min: 90, reports: []rollout.Report{rep("malphas", sw, 90)}, status: "complete", wave: 2},
			},
		},
		{
			name: "asleep with wait holds the wave until the timeout",
			steps: []step{
				{min: 0, reports: []rollout.Report{rep("stolas", sw, 0)}, offer: []string{"andras", "bael", "stolas"}, status: "progressing", wave: 1},
				{min: 1, reports: []rollout.Report{rep("andras", sw, 1)}, asleep: []string{"bael"}, status: "progressing", wave: 1},
				{min: 31, asleep: []string{"bael"}, status: "halted", wave: 1, haltHost: "bael", haltWhy: "timeout"},
			},
		},
		{
			name: "resume after a halt continues with the next wave",
			steps: []step{
				{min: 0, offer: []string{"stolas"}, status: "progressing"},
				{min: 3, reports: []rollout.Report{rep("stolas", failed, 3)}, status: "halted", haltHost: "stolas", haltWhy: "failed"},
				{min: 10, action: "resume", offer: []string{"andras", "bael"}, status: "progressing", wave: 1},
				{min: 11, reports: []rollout.Report{rep("stolas", failed, 3)}, status: "progressing", wave: 1},
				{min: 12, reports: []rollout.Report{rep("andras", sw, 12), rep("bael", failed, 12)}, status: "halted", wave: 1, haltHost: "bael", haltWhy: "failed"},
				{min: 13, action: "resume", offer: []string{"malphas"}, status: "progressing", wave: 2},
				{min: 14, action: "resume", wantErr: rollout.ErrNotHalted, status: "progressing", wave: 2},
			},
		},
		{
			name:    "resume after a timeout in the last wave completes",
			targets: []rollout.Target{{Host: "stolas", Wave: 0, StorePath: "/nix/store/new-stolas"}},
			steps: []step{
				{min: 0, offer: []string{"stolas"}, status: "progressing"},
				{min: 30, status: "halted", haltHost: "stolas", haltWhy: "timeout"},
				{min: 31, action: "resume", status: "complete"},
			},
		},
		{
			name: "abort ends it: nothing more is offered",
			steps: []step{
				{min: 0, offer: []string{"stolas"}, status: "progressing"},
				{min: 3, reports: []rollout.Report{rep("stolas", failed, 3)}, status: "halted", haltHost: "stolas", haltWhy: "failed"},
				{min: 4, action: "abort", status: "aborted", haltHost: "stolas", haltWhy: "failed"},
				{min: 5, reports: []rollout.Report{rep("stolas", sw, 5)}, status: "aborted", haltHost: "stolas", haltWhy: "failed"},
				{min: 6, action: "resume", wantErr: rollout.ErrNotHalted, status: "aborted", haltHost: "stolas", haltWhy: "failed"},
				{min: 7, action: "abort", wantErr: rollout.ErrEnded, status: "aborted", haltHost: "stolas", haltWhy: "failed"},
			},
		},
		{
			name: "waves need not be consecutive numbers",
			targets: []rollout.Target{
				{Host: "a", Wave: 3, StorePath: "/nix/store/new-a"},
				{Host: "b", Wave: 7, StorePath: "/nix/store/new-b"},
			},
			steps: []step{
				{min: 0, offer: []string{"a"}, status: "progressing", wave: 3},
				{min: 1, reports: []rollout.Report{rep("a", sw, 1)}, offer: []string{"b"}, status: "progressing", wave: 7},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			targets := tt.targets
			if targets == nil {
				targets = fleet()
			}
			c := tt.cfg
			if tt.name != "no timeout configured: a wave waits" {
				c = cfg
			}
			r, err := rollout.New("c2", rollout.KindPush, targets, at(0))
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tt.steps {
				var d rollout.Decision
				var err error
				switch s.action {
				case "":
					d = r.Advance(c, input(s))
				case "resume":
					d, err = r.Resume(at(s.min))
				case "abort":
					err = r.Abort(at(s.min), "admin")
					d = r.Advance(c, input(s))
				}
				if !errors.Is(err, s.wantErr) {
					t.Fatalf("step %d: err = %v, want %v", i, err, s.wantErr)
				}
				checkDecision(t, i, d, s)
				// Every step survives a round trip through the stored JSON.
				r = roundTrip(t, r)
			}
		})
	}
}

func input(s step) rollout.Input {
	in := rollout.Input{Now: at(s.min), Reports: map[string]rollout.Report{}, Liveness: map[string]rollout.Liveness{}}
	for _, r := range s.reports {
		in.Reports[r.Host] = r
	}
	for _, h := range s.asleep {
		in.Liveness[h] = rollout.LivenessAsleep
	}
	return in
}

func checkDecision(t *testing.T, i int, d rollout.Decision, s step) {
	t.Helper()
	if !reflect.DeepEqual(d.Offer, s.offer) {
		t.Errorf("step %d: offer = %v, want %v", i, d.Offer, s.offer)
	}
	if !reflect.DeepEqual(d.Wake, s.wake) {
		t.Errorf("step %d: wake = %v, want %v", i, d.Wake, s.wake)
	}
	if d.Status != s.status {
		t.Errorf("step %d: status = %s, want %s (halt %+v)", i, d.Status, s.status, d.Halt)
	}
	if d.Wave != s.wave {
		t.Errorf("step %d: wave = %d, want %d", i, d.Wave, s.wave)
	}
	var host string
	var why rollout.HaltReason
	if d.Halt != nil {
		host, why = d.Halt.Host, d.Halt.Reason
	}
	if host != s.haltHost || why != s.haltWhy {
		t.Errorf("step %d: halt = %s %s, want %s %s", i, host, why, s.haltHost, s.haltWhy)
	}
}

func roundTrip(t *testing.T, r *rollout.Rollout) *rollout.Rollout {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := rollout.Load(b)
	if err != nil {
		t.Fatalf("load %s: %v", b, err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip changed the state:\n got %+v\nwant %+v", got, r)
	}
	return got
}

func TestLaterWavesKeepTheirClosureWhileHalted(t *testing.T) {
	r, err := rollout.New("c2", rollout.KindPush, fleet(), at(0))
	if err != nil {
		t.Fatal(err)
	}
	r.Advance(rollout.Config{}, rollout.Input{Now: at(0)})
	r.Advance(rollout.Config{}, rollout.Input{Now: at(1), Reports: map[string]rollout.Report{"stolas": rep("stolas", rollout.OutcomeFailed, 1)}})
	for host, want := range map[string]bool{"stolas": true, "andras": false, "bael": false, "malphas": false} {
		if got := r.Offered(host); got != want {
			t.Errorf("Offered(%s) = %v, want %v", host, got, want)
		}
	}
}

func TestNewerCommitSupersedes(t *testing.T) {
	old, err := rollout.New("c1", rollout.KindPush, fleet(), at(0))
	if err != nil {
		t.Fatal(err)
	}
	old.Advance(rollout.Config{}, rollout.Input{Now: at(0)})
	next, err := rollout.Start(old, "c2", rollout.KindPush, fleet(), at(5))
	if err != nil {
		t.Fatal(err)
	}
	if old.Status != rollout.StatusSuperseded || old.SupersededBy != "c2" {
		t.Errorf("old: status %s by %q, want superseded by c2", old.Status, old.SupersededBy)
	}
	if d := old.Advance(rollout.Config{}, rollout.Input{Now: at(6), Reports: map[string]rollout.Report{"stolas": rep("stolas", rollout.OutcomeSwitched, 6)}}); d.Offer != nil || d.Status != rollout.StatusSuperseded {
		t.Errorf("old after supersede: %+v, want no offers, superseded", d)
	}
	if _, err := old.Resume(at(7)); !errors.Is(err, rollout.ErrNotHalted) {
		t.Errorf("resume superseded: %v, want ErrNotHalted", err)
	}
	if err := old.Supersede("c3", at(7)); !errors.Is(err, rollout.ErrEnded) {
		t.Errorf("supersede twice: %v, want ErrEnded", err)
	}
	if d := next.Advance(rollout.Config{}, rollout.Input{Now: at(5)}); !reflect.DeepEqual(d.Offer, []string{"stolas"}) {
		t.Errorf("new rollout offers %v, want the canary", d.Offer)
	}
	// A rollout that completed is not marked superseded.
	done, _ := rollout.New("c3", rollout.KindPush, []rollout.Target{{Host: "stolas", StorePath: "/nix/store/new-stolas"}}, at(0))
	done.Advance(rollout.Config{}, rollout.Input{Now: at(1), Reports: map[string]rollout.Report{"stolas": rep("stolas", rollout.OutcomeSwitched, 1)}})
	if _, err := rollout.Start(done, "c4", rollout.KindPush, fleet(), at(2)); err != nil || done.Status != rollout.StatusComplete {
		t.Errorf("start after a complete rollout: err %v, old status %s", err, done.Status)
	}
}

func TestRollbackUsesTheSameWaves(t *testing.T) {
	var targets []rollout.Target
	for _, tg := range fleet() {
		tg.StorePath = "/nix/store/old-" + tg.Host
		targets = append(targets, tg)
	}
	r, err := rollout.New("c0", rollout.KindRollback, targets, at(0))
	if err != nil {
		t.Fatal(err)
	}
	cfg := rollout.Config{}
	old := func(h string, min int) rollout.Report {
		return rollout.Report{Host: h, Closure: "/nix/store/old-" + h, Outcome: rollout.OutcomeSwitched, At: at(min)}
	}
	steps := []struct {
		reports []rollout.Report
		offer   []string
		status  rollout.Status
	}{
		{nil, []string{"stolas"}, rollout.StatusProgressing},
		{[]rollout.Report{rep("stolas", rollout.OutcomeSwitched, 1)}, nil, rollout.StatusProgressing}, // the new closure: not the target
		{[]rollout.Report{old("stolas", 2)}, []string{"andras", "bael"}, rollout.StatusProgressing},
		{[]rollout.Report{old("andras", 3), old("bael", 3)}, []string{"malphas"}, rollout.StatusProgressing},
		{[]rollout.Report{old("malphas", 4)}, nil, rollout.StatusComplete},
	}
	for i, s := range steps {
		in := rollout.Input{Now: at(i + 1), Reports: map[string]rollout.Report{}}
		for _, rp := range s.reports {
			in.Reports[rp.Host] = rp
		}
		d := r.Advance(cfg, in)
		if !reflect.DeepEqual(d.Offer, s.offer) || d.Status != s.status {
			t.Errorf("step %d: offer %v status %s, want %v %s", i, d.Offer, d.Status, s.offer, s.status)
		}
	}
	if r.Kind != rollout.KindRollback {
		t.Errorf("kind = %s", r.Kind)
	}
}

func TestInstalledHolds(t *testing.T) {
	r, _ := rollout.New("c2", rollout.KindPush, fleet(), at(0))
	cfg := rollout.Config{InstalledHolds: true}
	r.Advance(cfg, rollout.Input{Now: at(0)})
	d := r.Advance(cfg, rollout.Input{Now: at(1), Reports: map[string]rollout.Report{"stolas": rep("stolas", rollout.OutcomeInstalled, 1)}})
	if d.Offer != nil || d.Wave != 0 {
		t.Errorf("installed with InstalledHolds: offer %v wave %d, want nothing, wave 0", d.Offer, d.Wave)
	}
	d = r.Advance(cfg, rollout.Input{Now: at(2), Reports: map[string]rollout.Report{"stolas": rep("stolas", rollout.OutcomeSwitched, 2)}})
	if !reflect.DeepEqual(d.Offer, []string{"andras", "bael"}) {
		t.Errorf("switched after installed: offer %v, want wave 1", d.Offer)
	}
}

func TestNewRefusesBadTargets(t *testing.T) {
	ok := rollout.Target{Host: "a", StorePath: "/nix/store/x"}
	tests := []struct {
		name    string
		commit  string
		kind    rollout.Kind
		targets []rollout.Target
	}{
		{"no commit", "", rollout.KindPush, []rollout.Target{ok}},
		{"unknown kind", "c", "deploy", []rollout.Target{ok}},
		{"no hosts", "c", rollout.KindPush, nil},
		{"nameless host", "c", rollout.KindPush, []rollout.Target{{StorePath: "/nix/store/x"}}},
		{"host twice", "c", rollout.KindPush, []rollout.Target{ok, ok}},
		{"negative wave", "c", rollout.KindPush, []rollout.Target{{Host: "a", Wave: -1, StorePath: "/nix/store/x"}}},
		{"no closure", "c", rollout.KindPush, []rollout.Target{{Host: "a"}}},
		{"bad asleep policy", "c", rollout.KindPush, []rollout.Target{{Host: "a", StorePath: "/nix/store/x", Asleep: "wake"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := rollout.New(tt.commit, tt.kind, tt.targets, at(0)); !errors.Is(err, rollout.ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	r, _ := rollout.New("c2", rollout.KindPush, fleet(), at(0))
	r.Advance(rollout.Config{}, rollout.Input{Now: at(0)})
	b, _ := json.Marshal(r)
	var shape map[string]any
	if err := json.Unmarshal(b, &shape); err != nil {
		t.Fatal(err)
	}
	if shape["version"] != float64(1) || shape["status"] != "progressing" {
		t.Errorf("stored shape: version %v status %v", shape["version"], shape["status"])
	}
	for _, tt := range []struct {
		name string
		data string
		want error
	}{
		{"a future version", `{"version":2,"commit":"c"}`, rollout.ErrVersion},
		{"no version", `{"commit":"c"}`, rollout.ErrVersion},
	} {
		if _, err := rollout.Load([]byte(tt.data)); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := rollout.Load([]byte(`{"version":1,`)); err == nil {
		t.Error("truncated JSON loaded")
	}
}
