// Package window decides when the agent may switch a host to a new system: a
// maintenance window ("always", a daily "HH:MM-HH:MM" in the host's time zone,
// or "when-idle": nobody at the keyboard), and what to do outside it (install
// for the next boot now, or wait). Decide is pure; ReadSessions asks logind
// (through loginctl, with an injectable command runner) whether a person is at
// the keyboard.
package window

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kind is the kind of a window.
type Kind string

// The kinds of window.
const (
	Always   Kind = "always"
	WhenIdle Kind = "when-idle"
	Daily    Kind = "daily"
)

// Spec is a parsed window. Start and End (Daily only) are minutes after
// midnight, wall-clock time; End before Start crosses midnight.
type Spec struct {
	Kind  Kind
	Start int
	End   int
}

// ErrBadWindow is wrapped by Parse for a string that is no window.
var ErrBadWindow = errors.New(`window must be "always", "when-idle" or a daily "HH:MM-HH:MM"`)

// Parse reads "always", "when-idle" or a daily "HH:MM-HH:MM" (24-hour clock,
// two digits each; "22:00-02:00" crosses midnight). Start and end may not be
// equal.
func Parse(s string) (Spec, error) {
	switch Kind(s) {
	case Always, WhenIdle:
		return Spec{Kind: Kind(s)}, nil
	}
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return Spec{}, fmt.Errorf("parse window %q: %w", s, ErrBadWindow)
	}
	start, err1 := clock(from)
	end, err2 := clock(to)
	if err := errors.Join(err1, err2); err != nil {
		return Spec{}, fmt.Errorf("parse window %q: %w", s, ErrBadWindow)
	}
	if start == end {
		return Spec{}, fmt.Errorf("parse window %q: %w: it is empty (start = end)", s, ErrBadWindow)
	}
	return Spec{Kind: Daily, Start: start, End: end}, nil
}

func clock(s string) (int, error) {
	if len(s) != 5 || s[2] != ':' {
		return 0, ErrBadWindow
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	if err1 != nil || err2 != nil || h < 0 || h > 23 || m < 0 || m > 59 || s[0] == '+' || s[3] == '+' {
		return 0, ErrBadWindow
	}
	return h*60 + m, nil
}

// String gives the window as Parse reads it.
func (w Spec) String() string {
	if w.Kind != Daily {
		return string(w.Kind)
	}
	return fmt.Sprintf("%02d:%02d-%02d:%02d", w.Start/60, w.Start%60, w.End/60, w.End%60)
}

// Outside says what the agent does with a new system outside its window.
type Outside string

// The choices outside the window.
const (
	OutsideBoot Outside = "boot" // install it for the next boot now; switch once the window opens
	OutsideWait Outside = "wait" // do nothing until the window opens
)

// Policy is a host's window, as the agent's flags give it.
type Policy struct {
	Window  Spec
	Outside Outside
	// IdleFor is how long a graphical session must have been idle for
	// WhenIdle to count it as nobody at the keyboard.
	IdleFor time.Duration
	// Location is the time zone of a daily window (nil: UTC).
	Location *time.Location
}

// Action is what the agent does with a new system now.
type Action string

// The actions.
const (
	Switch Action = "switch" // activate it now
	Boot   Action = "boot"   // install it for the next boot, switch later
	Wait   Action = "wait"   // nothing yet
)

// Decision is Decide's answer.
type Decision struct {
	Action Action
	// Until is when the answer may change (the window opens, the session
	// will have been idle long enough); zero when only a change of the
	// sessions can change it, or for Switch.
	Until time.Time
	// Reason says why, for logs and the dashboard ("waiting for window
	// 03:00-05:00", "installed for next boot: rain is at the keyboard").
	Reason string
}

// Session is one logind session, as ReadSessions finds it.
type Session struct {
	ID     string
	User   string
	Type   string // x11, wayland, mir, tty, unspecified
	Class  string // user, greeter, lock-screen, background, manager
	Active bool   // the session in the foreground of its seat
	Remote bool
	Idle   bool      // logind's IdleHint
	Since  time.Time // IdleSinceHint: when it went idle (zero if unknown)
}

// Graphical reports whether s is a local graphical session of a person.
func (s Session) Graphical() bool {
	switch s.Type {
	case "x11", "wayland", "mir":
	default:
		return false
	}
	return (s.Class == "" || s.Class == "user") && !s.Remote
}

// Sessions is what logind says about the people on the host.
type Sessions struct {
	List []Session
	// IdleInhibited: some program holds a "block" inhibitor lock on idle (a
	// game, a full-screen video): logind's BlockInhibited lists "idle".
	IdleInhibited bool
}

// AtKeyboard returns the active local graphical session whose person is at
// the keyboard at now: one that is not idle, idle for less than idleFor, or
// kept from idling by an inhibitor. ok is false when there is none.
func (ss Sessions) AtKeyboard(now time.Time, idleFor time.Duration) (s Session, until time.Time, ok bool) {
	for _, s := range ss.List {
		if !s.Graphical() || !s.Active {
			continue
		}
		if !s.Idle || ss.IdleInhibited {
			return s, time.Time{}, true
		}
		if s.Since.IsZero() {
			continue // idle since an unknown time: long enough
		}
		if end := s.Since.Add(idleFor); now.Before(end) {
			return s, end, true
		}
	}
	return Session{}, time.Time{}, false
}

// Decide says what to do with a new system at now under policy p, given the
// sessions (read only for a when-idle window).
//
// A daily window is wall-clock time in p.Location: on the night clocks go
// forward a window (or the part of it) that does not exist that night is
// skipped; on the night they go back, the repeated hour is in the window
// both times.
func Decide(p Policy, now time.Time, ss Sessions) Decision {
	switch p.Window.Kind {
	case Always, "":
		return Decision{Action: Switch, Reason: "window always"}
	case WhenIdle:
		s, until, present := ss.AtKeyboard(now, p.IdleFor)
		if !present {
			return Decision{Action: Switch, Reason: "nobody at the keyboard"}
		}
		who := s.User
		if who == "" {
			who = "session " + s.ID
		}
		why := who + " is at the keyboard"
		if ss.IdleInhibited {
			why += " (idle inhibited)"
		}
		return outside(p, until, why)
	case Daily:
		loc := p.Location
		if loc == nil {
			loc = time.UTC
		}
		local := now.In(loc)
		if p.Window.contains(local.Hour()*60 + local.Minute()) {
			return Decision{Action: Switch, Reason: "in window " + p.Window.String()}
		}
		return outside(p, nextStart(p.Window, local), "outside window "+p.Window.String())
	}
	return Decision{Action: Wait, Reason: fmt.Sprintf("unknown window kind %q", p.Window.Kind)}
}

// HoldBack is the decision outside the window for the reason why (e.g.
// that the sessions could not be read): install for the next boot or wait,
// as p says, until (zero: unknown).
func HoldBack(p Policy, until time.Time, why string) Decision { return outside(p, until, why) }

func outside(p Policy, until time.Time, why string) Decision {
	if p.Outside == OutsideWait {
		return Decision{Action: Wait, Until: until, Reason: "waiting: " + why}
	}
	return Decision{Action: Boot, Until: until, Reason: "installed for next boot: " + why}
}

func (w Spec) contains(minute int) bool {
	if w.Start < w.End {
		return w.Start <= minute && minute < w.End
	}
	return minute >= w.Start || minute < w.End // crosses midnight
}

// nextStart is the first instant after local whose wall clock reads the
// window's start and that lies in the window (a start the clocks skip does
// not count), looking a few days ahead.
func nextStart(w Spec, local time.Time) time.Time {
	y, m, d := local.Date()
	for i := 0; i < 4; i++ {
		t := time.Date(y, m, d+i, w.Start/60, w.Start%60, 0, 0, local.Location())
		if !t.After(local) {
			continue
		}
		if tl := t.In(local.Location()); w.contains(tl.Hour()*60 + tl.Minute()) {
			return t
		}
	}
	return time.Time{}
}
