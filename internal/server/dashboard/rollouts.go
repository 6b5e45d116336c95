package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/rollout"
	"github.com/homelab-farm/farm/internal/server/httperr"
	"github.com/homelab-farm/farm/internal/state"
)

// Rollouts is what the pages read of the rollouts (*pipeline.Rollouts).
// An unknown id is an error wrapping state.ErrNotFound.
type Rollouts interface {
	Rollout(ctx context.Context, id int64) (state.Rollout, error)
	ActiveRollouts(ctx context.Context) ([]state.Rollout, error)
}

// rolloutView is a rollout as its page and the index show it.
type rolloutView struct {
	ID        int64
	Repo      string
	Commit    string
	CommitURL string
	Kind      string
	Status    string
	StatusCls string // the badge's class
	Wave      int    // the wave being offered
	Started   time.Time
	Ended     *time.Time
	Reason    string // why it ended
	Halt      *rollout.Halt
	Waves     []waveView
	Halted    bool // resume and abort are offered
	Active    bool // abort is offered
}

// waveView is one wave of a rollout.
type waveView struct {
	Wave  int
	Hosts []rolloutHostView
}

// rolloutHostView is one host of a wave: what the rollout knows of it and,
// for a closure it was offered, what its agent last said ("waiting for
// window", "installed for next boot").
type rolloutHostView struct {
	Host      string
	StorePath string
	Offered   bool
	Outcome   string
	Class     string // the badge's class
	Note      string
}

// rolloutViews lays out rollouts with the hosts' last reports.
func (d *Dashboard) rolloutViews(ctx context.Context, ros []state.Rollout) ([]rolloutView, error) {
	if len(ros) == 0 {
		return nil, nil
	}
	hs, err := d.State.Hosts(ctx)
	if err != nil {
		return nil, err
	}
	hosts := make(map[string]state.Host, len(hs))
	for _, h := range hs {
		hosts[h.Name] = h
	}
	out := make([]rolloutView, 0, len(ros))
	for _, r := range ros {
		out = append(out, d.rolloutView(r, hosts))
	}
	return out, nil
}

func (d *Dashboard) rolloutView(r state.Rollout, hosts map[string]state.Host) rolloutView {
	ro := r.State
	v := rolloutView{
		ID: r.ID, Repo: r.Repo, Commit: ro.Commit, CommitURL: d.commitURL(r.Repo, ro.Commit), Kind: string(ro.Kind),
		Status: string(ro.Status), Wave: ro.Wave, Started: ro.Started, Ended: ro.Ended, Reason: ro.EndReason, Halt: ro.Halt,
		Halted: ro.Status == rollout.StatusHalted, Active: ro.Status.Active(),
	}
	switch ro.Status {
	case rollout.StatusProgressing:
		v.StatusCls = "behind"
	case rollout.StatusHalted:
		v.StatusCls = "failed"
	case rollout.StatusComplete:
		v.StatusCls = "ok"
	default:
		v.StatusCls = "none"
	}
	for _, t := range ro.Targets { // by wave, then host
		hs := rollout.HostState{}
		if p := ro.Hosts[t.Host]; p != nil {
			hs = *p
		}
		if len(v.Waves) == 0 || v.Waves[len(v.Waves)-1].Wave != t.Wave {
			v.Waves = append(v.Waves, waveView{Wave: t.Wave})
		}
		w := &v.Waves[len(v.Waves)-1]
		w.Hosts = append(w.Hosts, hostInRollout(t, hs, hosts[t.Host]))
	}
	return v
}

// hostInRollout is what a rollout's page says of one of its hosts.
func hostInRollout(t rollout.Target, hs rollout.HostState, h state.Host) rolloutHostView {
	v := rolloutHostView{Host: t.Host, StorePath: t.StorePath, Offered: hs.OfferedAt != nil, Outcome: string(hs.Outcome)}
	switch {
	case hs.Outcome == rollout.OutcomeSwitched:
		v.Class = "ok"
	case hs.Outcome == rollout.OutcomeInstalled:
		v.Outcome, v.Class = "installed for next boot", "ok"
	case hs.Outcome != "":
		v.Class = "failed"
	case !v.Offered:
		v.Outcome, v.Class = "not offered yet", "none"
	default:
		v.Outcome, v.Class = "offered", "pending"
	}
	switch {
	case hs.Skipped:
		v.Note = "passed over asleep: updated when it wakes"
	case hs.Waived:
		v.Note = "waived by an admin"
	}
	if v.Offered && hs.Outcome == "" && h.DesiredPath == t.StorePath {
		switch farmapi.Result(h.LastResult) {
		case farmapi.ResultWaiting:
			v.Outcome, v.Class = string(farmapi.ResultWaiting), "pending"
		case farmapi.ResultInstalled:
			v.Outcome, v.Class = "installed for next boot", "ok"
		}
	}
	if hs.Outcome != "" && h.LastReason != "" && h.DesiredPath == t.StorePath && v.Class == "failed" {
		v.Note = h.LastReason
	}
	return v
}

// Rollout is GET /rollouts/{id}: a rollout's waves, each host's outcome,
// why it halted, and the resume and abort buttons (forms that post the
// admin token typed into them).
func (d *Dashboard) Rollout(w http.ResponseWriter, r *http.Request) error {
	if d.Rollouts == nil {
		return httperr.ErrNoRollouts
	}
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		return httperr.ErrBadRolloutID.Wrap(err)
	}
	ro, err := d.Rollouts.Rollout(r.Context(), id)
	if errors.Is(err, state.ErrNotFound) {
		return httperr.ErrNoRollout.Wrap(err)
	}
	if err != nil {
		return err
	}
	views, err := d.rolloutViews(r.Context(), []state.Rollout{ro})
	if err != nil {
		return err
	}
	v := views[0]
	// No refresh: it would wipe a token being typed into a form.
	return d.render(w, "rollout", page{Title: fmt.Sprintf("Rollout %d", v.ID), Nav: "evaluations", Data: v})
}

// activeRollouts are the index page's rollouts; none without Rollouts.
func (d *Dashboard) activeRollouts(ctx context.Context) ([]rolloutView, error) {
	if d.Rollouts == nil {
		return nil, nil
	}
	ros, err := d.Rollouts.ActiveRollouts(ctx)
	if err != nil {
		return nil, err
	}
	return d.rolloutViews(ctx, ros)
}
