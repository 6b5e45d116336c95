package window

import (
	"fmt"
	"time"

	"github.com/homelab-farm/farm/internal/cli"
)

// Flags are the agent's window flags, each with an environment fallback.
type Flags struct {
	Window      string
	Outside     string
	IdleMinutes int
	TimeZone    string
}

// RegisterFlags defines on fs (an agent flag set: AGENT_ environment names):
//
//	--window          AGENT_WINDOW          "always"
//	--outside-window  AGENT_OUTSIDE_WINDOW  "boot"
//	--idle-minutes    AGENT_IDLE_MINUTES    15
//	--time-zone       AGENT_TIME_ZONE       "" (the system's local time)
//
// and returns where they land; Policy turns them into a Policy after Parse.
func RegisterFlags(fs *cli.FlagSet) *Flags {
	f := &Flags{}
	fs.StringVar(&f.Window, "window", string(Always), `when a switch may happen: "always", "when-idle" or a daily "HH:MM-HH:MM" in --time-zone`)
	fs.StringVar(&f.Outside, "outside-window", string(OutsideBoot), `outside the window: "boot" (install for the next boot now) or "wait"`)
	fs.IntVar(&f.IdleMinutes, "idle-minutes", 15, `for --window when-idle: minutes a graphical session must have been idle`)
	fs.StringVar(&f.TimeZone, "time-zone", "", "IANA time `zone` of a daily window, e.g. Europe/Berlin (default the system's local time)")
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
