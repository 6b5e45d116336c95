package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/agent/window"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv"
)

// fakeLogind is a loginctl that answers from files, in systemd 252's
// formats (what window.ReadSessions reads).
type fakeLogind struct {
	dir, bin string
}

func newFakeLogind(t *testing.T) *fakeLogind {
	t.Helper()
	l := &fakeLogind{dir: t.TempDir()}
	l.bin = filepath.Join(l.dir, "loginctl")
	script := fmt.Sprintf(`#!/bin/sh
d=%q
case "$1" in
list-sessions) cat "$d/list.json" ;;
show-session)
	if [ "$2" = --no-pager ]; then cat "$d/inhibit.txt"; else cat "$d/session-$2.txt" || exit 1; fi ;;
*) echo "unexpected loginctl $*" >&2; exit 2 ;;
esac
`, l.dir)
	if err := os.WriteFile(l.bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	l.set(t, false)
	return l
}

// set makes logind answer with sessions (and an idle inhibitor when
// inhibited).
func (l *fakeLogind) set(t *testing.T, inhibited bool, sessions ...window.Session) {
	t.Helper()
	type row struct {
		Session string `json:"session"`
		UID     int    `json:"uid"`
		User    string `json:"user"`
	}
	rows := []row{}
	for _, s := range sessions {
		rows = append(rows, row{s.ID, 1000, s.User})
		yes := func(b bool) string {
			if b {
				return "yes"
			}
			return "no"
		}
		var since int64
		if !s.Since.IsZero() {
			since = s.Since.UnixMicro()
		}
		body := fmt.Sprintf("Id=%s\nName=%s\nType=%s\nClass=%s\nActive=%s\nRemote=%s\nIdleHint=%s\nIdleSinceHint=%d\n",
			s.ID, s.User, s.Type, s.Class, yes(s.Active), yes(s.Remote), yes(s.Idle), since)
		if err := os.WriteFile(filepath.Join(l.dir, "session-"+s.ID+".txt"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := json.Marshal(rows)
	inhibit := "BlockInhibited=handle-power-key:handle-lid-switch\n"
	if inhibited {
		inhibit = "BlockInhibited=handle-power-key:idle\n"
	}
	for name, body := range map[string][]byte{"list.json": b, "inhibit.txt": []byte(inhibit)} {
		if err := os.WriteFile(filepath.Join(l.dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// desktop is rain's Wayland session in the foreground of its seat, idle
// since since (zero: not idle).
func desktop(since time.Time) window.Session {
	return window.Session{ID: "2", User: "rain", Type: "wayland", Class: "user", Active: true, Idle: !since.IsZero(), Since: since}
}

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
	logind := newFakeLogind(t)
	f.cfg.Loginctl = logind.bin
	f.cfg.Window = window.Policy{Window: window.Spec{Kind: window.WhenIdle}, Outside: window.OutsideBoot, IdleFor: 15 * time.Minute}
	now := time.Now().UTC().Truncate(time.Second)
	poll := now.Add(f.cfg.SessionPoll)
	sessions := func(inhibited bool, ss ...window.Session) func() {
		return func() { logind.set(t, inhibited, ss...) }
	}
	steps := []windowStep{
		{name: "nobody logged in: switched", system: "v1", seq: 1, at: now, sessions: sessions(false),
			want: farmapi.ResultSwitched, current: "v1", profile: "v1", activations: []string{"activated v1 switch"}},
		{name: "rain at the keyboard: installed for boot", system: "v2", seq: 2, at: now, sessions: sessions(false, desktop(time.Time{})),
			want: farmapi.ResultInstalled, current: "v1", profile: "v2", activations: []string{"activated v2 boot"}, next: poll,
			reason: "rain is at the keyboard"},
		{name: "idle for 5 of 15 minutes: still deferred", at: now, sessions: sessions(false, desktop(now.Add(-5*time.Minute))),
			want: farmapi.ResultInstalled, current: "v1", profile: "v2", next: poll},
		{name: "idle for 14.5 minutes: look again when it reaches 15", at: now, sessions: sessions(false, desktop(now.Add(-14*time.Minute-30*time.Second))),
			want: farmapi.ResultInstalled, current: "v1", profile: "v2", next: now.Add(30 * time.Second)},
		{name: "idle for an hour, but a game inhibits idle", at: now, sessions: sessions(true, desktop(now.Add(-time.Hour))),
			want: farmapi.ResultInstalled, current: "v1", profile: "v2", next: poll, reason: "idle inhibited"},
		{name: "idle for 15 minutes: switched, health checked", at: now, sessions: sessions(false, desktop(now.Add(-15*time.Minute))),
			want: farmapi.ResultSwitched, current: "v2", profile: "v2", activations: []string{"activated v2 switch"}},
		{name: "logind unreadable: someone may be there", system: "unhealthy", seq: 3, at: now,
			sessions: func() { _ = os.Remove(filepath.Join(logind.dir, "list.json")) },
			want:     farmapi.ResultInstalled, current: "v2", profile: "unhealthy", activations: []string{"activated unhealthy boot"}, next: poll,
			reason: "sessions unknown"},
		{name: "idle again: the unhealthy closure is switched to and rolled back", at: now, sessions: sessions(false, desktop(now.Add(-time.Hour))),
			want: farmapi.ResultRolledBack, current: "v2", profile: "v2", activations: []string{"activated unhealthy switch", "activated v2 switch"}},
	}
	runWindowSteps(t, w, f, steps)
}

// TestRunChecksWhenIdle: Run looks again when a held-back switch may go
// ahead (Outcome.Next), not at the next interval.
func TestRunChecksWhenIdle(t *testing.T) {
	w := newWorld(t)
	f := w.fixture(t)
	logind := newFakeLogind(t)
	logind.set(t, false, desktop(time.Time{}))
	f.cfg.Loginctl = logind.bin
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
	logind.set(t, false) // rain logs out
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
