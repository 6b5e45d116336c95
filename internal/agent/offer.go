package agent

import (
	"context"
	"os/exec"
	"time"

	"github.com/homelab-farm/farm/internal/agent/window"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/farmapi"
)

// plan is how a closure is taken on: switch-to-configuration's mode, and,
// when the window held a switch back and the closure is only installed for
// the next boot, why (reported with farmapi.ResultInstalled).
type plan struct {
	mode string // ModeSwitch or ModeBoot
	held string
}

// offer takes m on as the host's window says: switched to now, installed
// for the next boot, or left waiting (the running system untouched). st is
// the state before; a closure already installed for boot is not installed
// again.
func (a *Agent) offer(ctx context.Context, st State, m deploy.Manifest, current string) (Outcome, error) {
	if a.cfg.SwitchMode == ModeBoot {
		return a.apply(ctx, st, m, current, plan{mode: ModeBoot})
	}
	d, next := a.decide(ctx)
	log := a.log.With(logSeq, m.Seq, logPath, m.StorePath)
	switch d.Action {
	case window.Switch:
		log.Info("switching", logReason, d.Reason)
		return a.apply(ctx, st, m, current, plan{mode: ModeSwitch})
	case window.Boot:
		if st.Result == farmapi.ResultInstalled && st.LastSeq == m.Seq && st.StorePath == m.StorePath {
			return Outcome{Current: current, Result: farmapi.ResultInstalled, Reason: d.Reason, Seq: m.Seq, Next: next}, nil
		}
		out, err := a.apply(ctx, st, m, current, plan{mode: ModeBoot, held: d.Reason})
		if out.Result == farmapi.ResultInstalled {
			out.Next = next
		}
		return out, err
	default:
		log.Info("not switching yet", logReason, d.Reason, "next_look", next)
		if err := a.remember(m, farmapi.ResultWaiting, d.Reason); err != nil {
			return Outcome{}, err
		}
		return Outcome{Current: current, Result: farmapi.ResultWaiting, Reason: d.Reason, Seq: m.Seq, Next: next}, nil
	}
}

// decide asks the window whether a switch may happen now, reading the
// sessions for a when-idle window; next is when to ask again (zero: at the
// next interval). Sessions that cannot be read count as a person at the
// keyboard: a desktop is not switched on a guess.
func (a *Agent) decide(ctx context.Context) (d window.Decision, next time.Time) {
	p := a.cfg.Window
	now := a.now()
	var ss window.Sessions
	if p.Window.Kind == window.WhenIdle {
		var err error
		if ss, err = window.ReadSessions(ctx, a.loginctl); err != nil {
			a.log.Warn("who is at the keyboard is unknown", logErr, err)
			d = window.HoldBack(p, time.Time{}, "sessions unknown: "+err.Error())
		} else {
			d = window.Decide(p, now, ss)
		}
		next = now.Add(a.cfg.SessionPoll)
		if !d.Until.IsZero() && d.Until.Before(next) {
			next = d.Until
		}
		return d, next
	}
	d = window.Decide(p, now, ss)
	return d, d.Until
}

// loginctl runs the configured loginctl for window.ReadSessions.
func (a *Agent) loginctl(ctx context.Context, name string, args ...string) ([]byte, error) {
	if name == "loginctl" && a.cfg.Loginctl != "" {
		name = a.cfg.Loginctl
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = a.cfg.Env
	return cmd.Output()
}
