package dashboard

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/hostname"
	"github.com/homelab-farm/farm/internal/rollout"
	"github.com/homelab-farm/farm/internal/server/httperr"
	"github.com/homelab-farm/farm/internal/state"
)

// Rollouts is what the pages read of the rollouts (*pipeline.Rollouts).
// An unknown id is an error wrapping state.ErrNotFound. RecentRollouts
// returns the newest first, of repo ("" for every repository).
type Rollouts interface {
	Rollout(ctx context.Context, id int64) (state.Rollout, error)
	ActiveRollouts(ctx context.Context) ([]state.Rollout, error)
	RecentRollouts(ctx context.Context, repo string, limit int) ([]state.Rollout, error)
}

// Limits of the rollout pages.
const (
	dashRollouts     = 50  // rollouts listed on /rollouts
	dashRollbackScan = 100 // a repository's rollouts searched for a commit's push rollout
)

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
	return d.render(w, "rollout", page{Title: fmt.Sprintf("Rollout %d", v.ID), Nav: "rollouts", Data: v})
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

// rolloutsData is the rollouts page: the recent rollouts and what the
// rollback form offers.
type rolloutsData struct {
	Rollouts []rolloutView
	// Repos are the configured repositories, offered when there are
	// several (a commit id may not say which).
	Repos []string
}

// RolloutList is GET /rollouts: the recent rollouts of every repository,
// newest first, and a form that rolls the fleet back to a commit (posted
// to POST /api/rollouts with the admin token typed into it).
func (d *Dashboard) RolloutList(w http.ResponseWriter, r *http.Request) error {
	if d.Rollouts == nil {
		return httperr.ErrNoRollouts
	}
	ros, err := d.Rollouts.RecentRollouts(r.Context(), "", dashRollouts)
	if err != nil {
		return err
	}
	var data rolloutsData
	if data.Rollouts, err = d.rolloutViews(r.Context(), ros); err != nil {
		return err
	}
	if len(d.Repositories) > 1 {
		for _, repo := range d.Repositories {
			data.Repos = append(data.Repos, repo.Name)
		}
	}
	// No refresh: it would wipe a token being typed into the form.
	return d.render(w, "rollouts", page{Title: "Rollouts", Nav: "rollouts", Data: data})
}

// rollbackHosts are the hosts the evaluation page offers to roll back to
// e's closures: none unless the builder runs rollouts and e is a finished
// deploy evaluation; else those of the commit's push rollout (the hosts
// it deployed) that e built, or without such a rollout every host it
// built, as a rollback of "every host" takes them. Sorted; only valid
// host names, as a rollback refuses others.
func (d *Dashboard) rollbackHosts(ctx context.Context, e state.Evaluation, ts []state.Target) ([]string, error) {
	if d.Rollouts == nil || !e.Deploy || (e.State != state.EvalDone && e.State != state.EvalFailed) {
		return nil, nil
	}
	built := map[string]bool{}
	for _, t := range ts {
		if (t.State == state.TargetBuilt || t.State == state.TargetCached) && t.OutPath != "" && hostname.Valid(t.Host) {
			built[t.Host] = true
		}
	}
	recent, err := d.Rollouts.RecentRollouts(ctx, e.Repo, dashRollbackScan)
	if err != nil {
		return nil, err
	}
	for _, ro := range recent {
		if ro.State.Kind != rollout.KindPush || ro.State.Commit != e.Commit {
			continue
		}
		var hosts []string
		for _, t := range ro.State.Targets {
			if built[t.Host] {
				hosts = append(hosts, t.Host)
			}
		}
		slices.Sort(hosts)
		return hosts, nil
	}
	return slices.Sorted(maps.Keys(built)), nil
}
