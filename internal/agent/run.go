package agent

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"time"

	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/httpsafe"
)

// Poke asks a running agent to check now. Woken says a Wake-on-LAN packet
// started the host for this update (see RunOptions.SuspendAfterWake).
type Poke struct {
	Woken bool `json:"woken,omitempty"`
}

// RunOptions tune Run.
type RunOptions struct {
	// Interval between checks; a poke or a resume also starts one.
	Interval time.Duration
	// Pokes delivers pokes (see PokeHandler); nil: none.
	Pokes <-chan Poke
	// ResumeTick is how often the wall clock is compared with the monotonic
	// one to notice a resume from sleep (the monotonic clock stops while
	// the machine sleeps); 0 means 30 s.
	ResumeTick time.Duration
	// SuspendAfterWake is the command (argv) run after a check that a
	// woken poke asked for; nil: the host stays up.
	SuspendAfterWake []string
	// RetryMin is the first wait after a check that failed in a way that
	// may pass (builder or cache unreachable); it doubles up to Interval.
	// 0 means 30 s.
	RetryMin time.Duration
	// PokeGap is the least time between the end of a check and a check a
	// poke starts: pokes that come sooner wait for it, and any number of
	// them collapse into one check (woken if any of them was). 0 means
	// DefaultPokeGap.
	PokeGap time.Duration

	// slept replaces sleptBetween in tests.
	slept func(prev, now time.Time) time.Duration
	// after replaces time.After for the poke gap in tests.
	after func(time.Duration) <-chan time.Time
}

// DefaultPokeGap is RunOptions.PokeGap's default: a flood of pokes costs at
// most one check a second.
const DefaultPokeGap = time.Second

// sleptBetween is how long the machine slept between two readings of the
// clock: Round(0) strips the monotonic reading, and the wall clock keeps
// running while the machine sleeps, the monotonic one does not.
func sleptBetween(prev, now time.Time) time.Duration {
	return now.Round(0).Sub(prev.Round(0)) - now.Sub(prev)
}

// Run checks on start, every Interval, when poked, after a resume from
// sleep and when a switch the window held back may go ahead
// (Outcome.Next), until ctx is done. Checks never overlap: at most one runs and at
// most one more is asked for; pokes that arrive during a check or less than
// PokeGap after it are coalesced into that one more check, which is woken
// if any of them was.
func (a *Agent) Run(ctx context.Context, o RunOptions) error {
	if o.ResumeTick <= 0 {
		o.ResumeTick = 30 * time.Second
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 30 * time.Second
	}
	if o.slept == nil {
		o.slept = sleptBetween
	}
	if o.PokeGap <= 0 {
		o.PokeGap = DefaultPokeGap
	}
	if o.after == nil {
		o.after = time.After
	}
	var (
		lastEnd time.Time        // when the last check ended
		queued  *Poke            // pokes waiting for the gap, collapsed
		gap     <-chan time.Time // fires when the gap has passed
	)
	timer := time.NewTimer(0) // the first check, right away
	defer timer.Stop()
	retry := o.RetryMin
	tick := time.NewTicker(o.ResumeTick)
	defer tick.Stop()
	lastTick := time.Now()
	for {
		var woken bool
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			a.log.Debug("check: timer")
		case p := <-o.Pokes:
			if wait := o.PokeGap - time.Since(lastEnd); wait > 0 {
				if queued == nil {
					queued = &Poke{}
					gap = o.after(wait)
					a.log.Info("poked soon after a check; checking after the gap", "in", wait.Round(time.Millisecond).String())
				}
				queued.Woken = queued.Woken || p.Woken
				continue
			}
			woken = p.Woken
			a.log.Info("check: poked", "woken", woken)
		case <-gap:
			a.log.Info("check: poked", "woken", queued.Woken)
		case now := <-tick.C:
			slept := o.slept(lastTick, now)
			lastTick = now
			if slept < o.ResumeTick {
				continue
			}
			a.log.Info("check: resumed from sleep", "slept", slept.Round(time.Second).String())
		}
		if queued != nil {
			// This check answers the pokes waiting too.
			woken = woken || queued.Woken
			queued, gap = nil, nil
		}
		out, err := a.Check(ctx)
		lastEnd = time.Now()
		if err != nil {
			a.log.Warn("check", logErr, err)
		}
		if woken && len(o.SuspendAfterWake) > 0 && err == nil && out.Result != farmapi.ResultFailed {
			a.log.Info("suspending again after a woken update", "command", strings.Join(o.SuspendAfterWake, " "))
			if err := exec.CommandContext(ctx, o.SuspendAfterWake[0], o.SuspendAfterWake[1:]...).Run(); err != nil {
				a.log.Warn("suspend", logErr, err)
			}
		}
		next := o.Interval
		if err != nil || out.Retry {
			next = min(retry, o.Interval)
			retry = min(2*retry, o.Interval)
			a.log.Info("checking again soon", "in", next.String())
		} else {
			retry = o.RetryMin
		}
		if err == nil && !out.Next.IsZero() {
			// The window opens, or the person may have left the
			// keyboard, before the next interval: look again then.
			if wait := max(time.Until(out.Next), time.Second); wait < next {
				next = wait
				a.log.Info("checking again for the window", "in", next.Round(time.Second).String())
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// PokeHandler serves POST /poke for the notifier: with the right bearer
// token it sends a Poke on pokes (coalescing it with one already waiting,
// a woken mark winning) and answers 202; else 401. Every answer carries
// X-Content-Type-Options: nosniff.
func PokeHandler(token []byte, pokes chan Poke) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /poke", func(w http.ResponseWriter, r *http.Request) {
		if !httpsafe.Bearer(r, token) {
			http.Error(w, "bad or missing poke token", http.StatusUnauthorized)
			return
		}
		var p Poke
		body, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
		if len(strings.TrimSpace(string(body))) > 0 {
			if err := json.Unmarshal(body, &p); err != nil {
				http.Error(w, "malformed poke", http.StatusBadRequest)
				return
			}
		}
		select {
		case pokes <- p:
		default: // a check is already asked for; keep the woken mark
			if p.Woken {
				select {
				case <-pokes:
				default:
				}
				select {
				case pokes <- p:
				default:
				}
			}
		}
		w.WriteHeader(http.StatusAccepted)
	})
	return httpsafe.NoSniff(mux)
}
