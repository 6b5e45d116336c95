package window

import (
	"flag"
	"fmt"
	"time"

	"github.com/homelab-farm/farm/internal/envflag"
)

// Flags are the agent's window flags, each with an environment fallback.
type Flags struct {
	Window      string
	Outside     string
	IdleMinutes int
	TimeZone    string
}

// RegisterFlags defines on fs:
//
//	--window          AGENT_WINDOW          "always"
//	--outside-window  AGENT_OUTSIDE_WINDOW  "boot"
//	--idle-minutes    AGENT_IDLE_MINUTES    15
//	--time-zone       AGENT_TIME_ZONE       "" (the system's local time)
//
// and returns where they land; Policy turns them into a Policy after Parse.
func RegisterFlags(fs *flag.FlagSet, getenv func(string) string) *Flags {
	f := &Flags{}
	fs.StringVar(&f.Window, "window", envflag.String(getenv, "AGENT_WINDOW", string(Always)), `when a switch may happen: "always", "when-idle" or a daily "HH:MM-HH:MM" in --time-zone (env AGENT_WINDOW)`)
	fs.StringVar(&f.Outside, "outside-window", envflag.String(getenv, "AGENT_OUTSIDE_WINDOW", string(OutsideBoot)), `outside the window: "boot" (install for the next boot now) or "wait" (env AGENT_OUTSIDE_WINDOW)`)
	fs.IntVar(&f.IdleMinutes, "idle-minutes", envflag.Int(getenv, "AGENT_IDLE_MINUTES", 15), `for --window when-idle: minutes a graphical session must have been idle (env AGENT_IDLE_MINUTES)`)
	fs.StringVar(&f.TimeZone, "time-zone", getenv("AGENT_TIME_ZONE"), "IANA time `zone` of a daily window, e.g. Europe/Berlin (env AGENT_TIME_ZONE; default the system's local time)")
	return f
}

// Policy checks the flags and returns the policy they describe.
func (f *Flags) Policy() (Policy, error) {
	w, err := Parse(f.Window)
	if err != nil {
		return Policy{}, fmt.Errorf("--window: %w", err)
	}
	o := Outside(f.Outside)
	if o != OutsideBoot && o != OutsideWait {
		return Policy{}, fmt.Errorf(`--outside-window must be "boot" or "wait", not %q`, f.Outside)
	}
	if f.IdleMinutes < 1 {
		return Policy{}, fmt.Errorf("--idle-minutes must be 1 or more, not %d", f.IdleMinutes)
	}
	loc := time.Local
	if f.TimeZone != "" {
		if loc, err = time.LoadLocation(f.TimeZone); err != nil {
			return Policy{}, fmt.Errorf("--time-zone: %w", err)
		}
	}
	return Policy{Window: w, Outside: o, IdleFor: time.Duration(f.IdleMinutes) * time.Minute, Location: loc}, nil
}
