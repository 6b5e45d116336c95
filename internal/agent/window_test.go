package agent

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/agent/window"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/logindtest"
)

// windowStep is one check of a host under a window: the manifest served
// (seq 0: the last one again), the agent's clock, and what must follow.
type windowStep struct {
	name        string
	system      string
	seq         uint64
	at          time.Time
	sessions    func() // sets logind's answer before the check
	want        farmapi.Result
	current     string // the running system's name after the check
	profile     string // the profile's (boot default's) name after it
	activations []string
	next        time.Time // Outcome.Next
	reason      string    // part of the reason
}

func runWindowSteps(t *testing.T, w *world, f *fixture, steps []windowStep) {
	t.Helper()
	log := f.activationLog(t) // what earlier steps left
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.sessions != nil {
				st.sessions()
			}
			if st.seq > 0 {
				w.fb.serve(f.sign(t, w.deployKey, "stolas", w.paths[st.system], st.seq))
			}
			a := f.agent()
			a.now = func() time.Time { return st.at }
			out := check(t, a)
			if out.Result != st.want || out.Current != w.paths[st.current] || !out.Next.Equal(st.next) {
				t.Fatalf("outcome = %+v, want %s with %s running, next check at %v", out, st.want, st.current, st.next)
			}
			if !strings.Contains(out.Reason, st.reason) {
				t.Errorf("reason %q, want it to say %q", out.Reason, st.reason)
			}
			if rep := w.fb.lastReport(); rep != out.Report() {
				t.Errorf("reported %+v, want %+v", rep, out.Report())
			}
			if st.current == "" {
				if _, err := os.Lstat(f.current); !os.IsNotExist(err) {
					t.Errorf("a current system exists (%v), want none", err)
				}
			} else if got := f.currentPath(t); got != w.paths[st.current] {
				t.Errorf("current system = %s, want %s", got, w.paths[st.current])
			}
			if got := f.profilePath(t); got != w.paths[st.profile] {
				t.Errorf("profile = %s, want %s", got, w.paths[st.profile])
			}
			log = append(log, st.activations...)
			if got := f.activationLog(t); strings.Join(got, "\n") != strings.Join(log, "\n") {
				t.Errorf("activation log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(log, "\n"))
			}
		})
	}
}

// TestDailyWindow: outside a daily window a new closure is installed for
// the next boot (the running system untouched) and switched to when the
// window opens, with health checks; a closure that fails them is rolled
// back to exactly the previous one. Outside the window with "wait",
// nothing is installed.
func TestDailyWindow(t *testing.T) {
	w := newWorld(t)
	f := w.fixture(t)
	now := time.Now().UTC().Truncate(time.Minute)
	open := now.Add(6 * time.Hour) // the window: an hour from six hours on
	spec, err := window.Parse(fmt.Sprintf("%02d:%02d-%02d:%02d", open.Hour(), open.Minute(), open.Add(time.Hour).Hour(), open.Add(time.Hour).Minute()))
	if err != nil {
		t.Fatal(err)
	}
	f.cfg.Window = window.Policy{Window: spec, Outside: window.OutsideBoot, Location: time.UTC}
	inside := open.Add(30 * time.Minute)
	runWindowSteps(t, w, f, []windowStep{
		{name: "first install outside the window: for boot", system: "v1", seq: 1, at: now, want: farmapi.ResultInstalled,
			current: "", profile: "v1", activations: []string{"activated v1 boot"}, next: open, reason: "installed for next boot: outside window"},
		{name: "in the window: switched", at: inside, want: farmapi.ResultSwitched, current: "v1", profile: "v1",
			activations: []string{"activated v1 switch"}},
		{name: "a new closure outside the window: installed for boot", system: "v2", seq: 2, at: now, want: farmapi.ResultInstalled,
			current: "v1", profile: "v2", activations: []string{"activated v2 boot"}, next: open, reason: "outside window " + spec.String()},
		{name: "still outside: not installed again", at: now.Add(time.Hour), want: farmapi.ResultInstalled,
			current: "v1", profile: "v2", next: open},
		{name: "the window opens: switched", at: inside, want: farmapi.ResultSwitched, current: "v2", profile: "v2",
			activations: []string{"activated v2 switch"}},
		{name: "an unhealthy closure is installed for boot", system: "unhealthy", seq: 3, at: now, want: farmapi.ResultInstalled,
			current: "v2", profile: "unhealthy", activations: []string{"activated unhealthy boot"}, next: open},
		{name: "its switch fails the health check and is rolled back", at: inside, want: farmapi.ResultRolledBack,
			current: "v2", profile: "v2", activations: []string{"activated unhealthy switch", "activated v2 switch"}, reason: "health check"},
	})

	t.Run("wait outside the window", func(t *testing.T) {
		f.cfg.Window.Outside = window.OutsideWait
		runWindowSteps(t, w, f, []windowStep{
			{name: "waiting: nothing installed", system: "v3", seq: 4, at: now, want: farmapi.ResultWaiting,
				current: "v2", profile: "v2", next: open, reason: "waiting: outside window"},
			{name: "still waiting", at: now.Add(time.Minute), want: farmapi.ResultWaiting, current: "v2", profile: "v2", next: open},
			{name: "the window opens: switched", at: inside, want: farmapi.ResultSwitched, current: "v3", profile: "v3",
				activations: []string{"activated v3 switch"}},
		})
	})
}

// TestWhenIdle: a desktop never switches under an active graphical
// session: the closure is installed for the next boot and switched once
// the session has been idle for IdleFor; an idle inhibitor (a game) counts
// as a person at the keyboard, and so do sessions logind cannot tell.
func TestWhenIdle(t *testing.T) {
	w := newWorld(t)
	f := w.fixture(t)
	logind := logindtest.New(t)
	f.cfg.Loginctl = logind.Bin
	f.cfg.Window = window.Policy{Window: window.Spec{Kind: window.WhenIdle}, Outside: window.OutsideBoot, IdleFor: 15 * time.Minute}
	now := time.Now().UTC().Truncate(time.Second)
	poll := now.Add(f.cfg.SessionPoll)
	sessions := func(inhibited bool, ss ...window.Session) func() {
		return func() { logind.Set(t, inhibited, ss...) }
	}
	steps := []windowStep{
		{name: "nobody logged in: switched", system: "v1", seq: 1, at: now, sessions: sessions(false),
			want: farmapi.ResultSwitched, current: "v1", profile: "v1", activations: []string{"activated v1 switch"}},
		{name: "rain at the keyboard: installed for boot", system: "v2", seq: 2, at: now, sessions: sessions(false, logindtest.Desktop(time.Time{})),
			want: farmapi.ResultInstalled, current: "v1", profile: "v2", activations: []string{"activated v2 boot"}, next: poll,
			reason: "rain is at the keyboard"},
		{name: "idle for 5 of 15 minutes: still deferred", at: now, sessions: sessions(false, logindtest.Desktop(now.Add(-5*time.Minute))),
			want: farmapi.ResultInstalled, current: "v1", profile: "v2", next: poll},
		{name: "idle for 14.5 minutes: look again when it reaches 15", at: now, sessions: sessions(false, logindtest.Desktop(now.Add(-14*time.Minute-30*time.Second))),
			want: farmapi.ResultInstalled, current: "v1", profile: "v2", next: now.Add(30 * time.Second)},
		{name: "idle for an hour, but a game inhibits idle", at: now, sessions: sessions(true, logindtest.Desktop(now.Add(-time.Hour))),
			want: farmapi.ResultInstalled, current: "v1", profile: "v2", next: poll, reason: "idle inhibited"},
		{name: "idle for 15 minutes: switched, health checked", at: now, sessions: sessions(false, logindtest.Desktop(now.Add(-15*time.Minute))),
			want: farmapi.ResultSwitched, current: "v2", profile: "v2", activations: []string{"activated v2 switch"}},
		{name: "logind unreadable: someone may be there", system: "unhealthy", seq: 3, at: now,
			sessions: func() { logind.Unreadable(t) },
			want:     farmapi.ResultInstalled, current: "v2", profile: "unhealthy", activations: []string{"activated unhealthy boot"}, next: poll,
			reason: "sessions unknown"},
		{name: "idle again: the unhealthy closure is switched to and rolled back", at: now, sessions: sessions(false, logindtest.Desktop(now.Add(-time.Hour))),
			want: farmapi.ResultRolledBack, current: "v2", profile: "v2", activations: []string{"activated unhealthy switch", "activated v2 switch"}},
	}
	runWindowSteps(t, w, f, steps)
}

// TestRunChecksWhenIdle: Run looks again when a held-back switch may go
// ahead (Outcome.Next), not at the next interval.
func TestRunChecksWhenIdle(t *testing.T) {
	w := newWorld(t)
	f := w.fixture(t)
	logind := logindtest.New(t)
	logind.Set(t, false, logindtest.Desktop(time.Time{}))
	f.cfg.Loginctl = logind.Bin
	f.cfg.SessionPoll = 100 * time.Millisecond
	f.cfg.Window = window.Policy{Window: window.Spec{Kind: window.WhenIdle}, Outside: window.OutsideWait, IdleFor: time.Minute}
	w.fb.serve(f.sign(t, w.deployKey, "stolas", w.paths["v1"], 1))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.agent().Run(ctx, RunOptions{Interval: 24 * time.Hour}) }()
	defer func() { cancel(); <-done }()
	result := func() farmapi.Result {
		w.fb.mu.Lock()
		defer w.fb.mu.Unlock()
		if len(w.fb.reports) == 0 {
			return ""
		}
		return w.fb.reports[len(w.fb.reports)-1].Result
	}
	testenv.Eventually(t, 30*time.Second, func() bool { return result() == farmapi.ResultWaiting }, "a report of waiting")
	logind.Set(t, false) // rain logs out
	testenv.Eventually(t, 30*time.Second, func() bool { return result() == farmapi.ResultSwitched }, "the switch once nobody is at the keyboard")
	if got := f.currentPath(t); got != w.paths["v1"] {
		t.Errorf("current system = %s, want v1", got)
	}
}

// TestInterruptedInstallForBoot: an install for the next boot that the
// agent (or the host) stopped in the middle of is finished as one (the
// boot entry written again), not switched to.
func TestInterruptedInstallForBoot(t *testing.T) {
	w := newWorld(t)
	f := w.fixture(t)
	p := w.paths
	w.fb.serve(f.sign(t, w.deployKey, "stolas", p["v1"], 1))
	if out := check(t, f.agent()); out.Result != farmapi.ResultSwitched {
		t.Fatalf("install v1: %+v", out)
	}
	ctx := context.Background()
	if err := f.client.RealiseFrom(ctx, p["v2"], nix.SubstituteOptions{From: f.cfg.CacheURL, TrustedKeys: []string{f.cfg.CacheKey}, Store: f.cfg.Store}); err != nil {
		t.Fatal(err)
	}
	if err := f.client.SetProfile(ctx, f.cfg.Store, f.profile, p["v2"]); err != nil {
		t.Fatal(err)
	}
	st, _ := loadState(f.stateDir)
	st.Pending = &Pending{Seq: 2, StorePath: p["v2"], Previous: p["v1"], Held: "installed for next boot: outside window 03:00-05:00"}
	if err := saveState(f.stateDir, st); err != nil {
		t.Fatal(err)
	}
	w.fb.serve(f.sign(t, w.deployKey, "stolas", p["v2"], 2))
	before := len(f.activationLog(t))

	out := check(t, f.agent())
	if out.Result != farmapi.ResultInstalled || out.Current != p["v1"] || out.Seq != 2 || !strings.Contains(out.Reason, "outside window") {
		t.Fatalf("outcome = %+v, want installed for boot with v1 running", out)
	}
	if c, pp := f.currentPath(t), f.profilePath(t); c != p["v1"] || pp != p["v2"] {
		t.Errorf("current %s, profile %s; want v1 running, v2 for boot", c, pp)
	}
	if got := f.activationLog(t)[before:]; strings.Join(got, " ") != "activated v2 boot" {
		t.Errorf("activations after the restart = %q, want the boot entry again", got)
	}
}
