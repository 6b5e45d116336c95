package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/hostname"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/rollout"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/textcut"
)

// Errors of Rollback; callers (the API) branch on them with errors.Is.
var (
	// ErrRollbackRefused: the request names no deployed commit, an
	// ambiguous one, or a host without a closure at that commit.
	ErrRollbackRefused = errors.New("rollback refused")
	// ErrClosureMissing: a closure to roll back to is no longer in the
	// binary cache (retention collected it), so hosts could not fetch it.
	ErrClosureMissing = errors.New("closure no longer in the binary cache")
)

// RolloutStore is what rollouts keep in the builder's state; *state.Store
// is the real one, on SQLite or PostgreSQL. Implementations are safe for
// concurrent use; unknown ids return an error wrapping state.ErrNotFound.
type RolloutStore interface {
	// WithRollouts runs fn in one transaction holding the lock of repo's
	// rollouts (see state.Store.WithRollouts).
	WithRollouts(ctx context.Context, repo string, fn func(tx state.RolloutTx) error) error
	Rollout(ctx context.Context, id int64) (state.Rollout, error)
	ActiveRollouts(ctx context.Context) ([]state.Rollout, error)
	// Rollouts returns repo's newest rollouts first.
	Rollouts(ctx context.Context, repo string, limit int) ([]state.Rollout, error)
	// DeployEvaluations returns the finished deploy evaluations of the
	// commits starting with prefix, newest first.
	DeployEvaluations(ctx context.Context, prefix string) ([]state.Evaluation, error)
	Targets(ctx context.Context, evalID int64) ([]state.Target, error)
}

var _ RolloutStore = (*state.Store)(nil)

// Rollouts drives the rollouts: a deploy-branch commit is offered to the
// fleet wave by wave (the waves the fleet flake's farm.deploy declares),
// each host's signed manifest issued only when its wave opens; agents'
// reports and a ticker move each rollout on (rollout.Rollout is the state
// machine); a failed host or a wave past its gate timeout halts it until
// an admin resumes or aborts it, or a newer commit supersedes it; and a
// fleet rollback is a rollout of the closures of an earlier commit with new,
// higher seqs.
//
// Every change to a repository's rollouts runs in one state transaction
// under that repository's lock (state.Store.WithRollouts): the manifests
// of an opened wave, the events and the rollout's new state are committed
// together, and several builders on one PostgreSQL never both open a wave.
// Commit statuses are sent after the commit. Safe for concurrent use.
type Rollouts struct {
	State RolloutStore
	// Signer signs the manifests (required); ManifestTTL is their validity
	// (0: DefaultManifestTTL); CacheURL the substituter they name.
	Signer      deploy.Signer
	ManifestTTL time.Duration
	CacheURL    string
	// Cache is the binary cache a rollback's closures must still be in.
	Cache cache.Backend
	// Config holds the gate timeout and whether installing for the next
	// boot passes a wave.
	Config rollout.Config
	// AsleepAfter is how long an offered host may stay silent (no report
	// since its offer) before it counts as asleep, so that a host whose
	// policy is "skip" stops holding its wave; 0: hosts never count as
	// asleep.
	AsleepAfter time.Duration
	// Settings reads the fleet flake's farm.deploy output at a commit
	// (nix.Client.DeploySettings); nil, or a flake without it, puts every
	// host in wave 0.
	Settings func(ctx context.Context, flake string) (map[string]nix.DeploySettings, error)
	// Statuses sends a rollout's commit status ("<prefix>/rollout"); nil
	// sends none.
	Statuses *Statuses
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
}

func (r *Rollouts) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}

func (r *Rollouts) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

// Push is a deploy-branch commit to roll out.
type Push struct {
	Job queue.Job // repository, branch, commit and the remotes it came from
	// Targets are the evaluation's; those built or found cached are
	// rolled out, the others keep their closure.
	Targets []state.Target
	// Settings are farm.deploy at the commit: a host not in it is not
	// deployed by the farm. Nil: every host, all in wave 0.
	Settings map[string]nix.DeploySettings
	// IsAncestor reports whether commit a is an ancestor of b; nil: no
	// commit counts as older than another.
	IsAncestor func(ctx context.Context, a, b string) bool
}

// Start begins the rollout of a pushed commit, superseding the active one
// of its repository, and opens its first wave. It starts nothing (and
// returns false) when there is nothing to deploy, when this commit's
// rollout was started already (a retried job), or when the repository's
// newest push rollout is of a descendant of this commit (it arrived late).
func (r *Rollouts) Start(ctx context.Context, p Push) (state.Rollout, bool, error) {
	var targets []rollout.Target
	for _, t := range p.Targets {
		if (t.State != state.TargetBuilt && t.State != state.TargetCached) || !hostname.Valid(t.Host) {
			continue
		}
		s, ok := p.Settings[t.Host]
		if p.Settings != nil && !ok {
			continue // the flake says the farm does not deploy it
		}
		targets = append(targets, rollout.Target{Host: t.Host, Wave: s.Wave, StorePath: t.OutPath, Asleep: rollout.AsleepPolicy(s.Asleep)})
	}
	job := p.Job
	if len(targets) == 0 {
		r.log().Info("nothing to roll out", "repo", job.Repo, "commit", job.Commit)
		return state.Rollout{}, false, nil
	}
	var tr transition
	started := false
	err := r.State.WithRollouts(ctx, job.Repo, func(tx state.RolloutTx) error {
		tr, started = transition{}, false
		latest, ok, err := tx.Latest(ctx, rollout.KindPush)
		if err != nil {
			return err
		}
		if ok && latest.State.Commit == job.Commit {
			return nil
		}
		if ok && p.IsAncestor != nil && p.IsAncestor(ctx, job.Commit, latest.State.Commit) {
			r.log().Info("not rolling out an older commit", "repo", job.Repo, "commit", job.Commit, "newer", latest.State.Commit)
			return nil
		}
		rec := state.Rollout{Branch: job.Branch, Remotes: job.Remotes}
		tr, err = r.begin(ctx, tx, rec, job.Commit, rollout.KindPush, targets)
		started = err == nil
		return err
	})
	if err != nil {
		return state.Rollout{}, false, fmt.Errorf("start rollout of %s: %w", job.Commit, err)
	}
	if !started {
		return state.Rollout{}, false, nil
	}
	r.tell(ctx, tr)
	return tr.rec, true, nil
}

// begin supersedes the active rollouts of tx's repository, creates one of
// commit to targets from rec's origin and opens its first wave.
func (r *Rollouts) begin(ctx context.Context, tx state.RolloutTx, rec state.Rollout, commit string, kind rollout.Kind, targets []rollout.Target) (transition, error) {
	now := r.now()
	next, err := rollout.New(commit, kind, targets, now)
	if err != nil {
		return transition{}, err
	}
	active, err := tx.Active(ctx)
	if err != nil {
		return transition{}, err
	}
	for _, a := range active {
		if err := a.State.Supersede(commit, now); err != nil {
			return transition{}, err
		}
		if err := tx.Save(ctx, a); err != nil {
			return transition{}, err
		}
		if err := tx.Append(string(farmapi.RolloutEnded), rolloutData(a)); err != nil {
			return transition{}, err
		}
	}
	rec.State = next
	if rec, err = tx.Create(ctx, rec); err != nil {
		return transition{}, err
	}
	if err := tx.Append(string(farmapi.RolloutStarted), rolloutData(rec)); err != nil {
		return transition{}, err
	}
	tr, err := r.step(ctx, tx, &rec, now, func(ro *rollout.Rollout) (rollout.Decision, error) {
		return ro.Advance(r.Config, rollout.Input{Now: now}), nil
	})
	tr.started = true
	return tr, err
}

// Report moves every active rollout that includes host on with the
// agent's report, received now. Call it after the report is recorded
// (state.Store.Report): a report about another closure than the host's
// target, or "waiting for window", changes nothing.
func (r *Rollouts) Report(ctx context.Context, host string, rep farmapi.Report) error {
	active, err := r.State.ActiveRollouts(ctx)
	if err != nil {
		return fmt.Errorf("report of %s: %w", host, err)
	}
	var errs []error
	for _, a := range active {
		if _, ok := a.State.Target(host); !ok {
			continue
		}
		err := r.update(ctx, a.Repo, a.ID, func(tx state.RolloutTx, rec *state.Rollout, now time.Time) (rollout.Decision, error) {
			t, _ := rec.State.Target(host)
			h, err := tx.Host(ctx, host)
			if err != nil && !errors.Is(err, state.ErrNotFound) {
				return rollout.Decision{}, err
			}
			in, err := r.input(ctx, tx, rec, now)
			if err != nil {
				return rollout.Decision{}, err
			}
			if rr, ok := counted(t, h, rep, now); ok {
				in.Reports = map[string]rollout.Report{host: rr}
			}
			return rec.State.Advance(r.Config, in), nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("report of %s to rollout %d: %w", host, a.ID, err))
		}
	}
	return errors.Join(errs...)
}

// counted is the rollout's view of an agent's report on target t, given
// what the state holds of the host (its desired seq names the manifest the
// report's seq refers to). It reports false for a report that says nothing
// about a closure (waiting for its window).
func counted(t rollout.Target, h state.Host, rep farmapi.Report, now time.Time) (rollout.Report, bool) {
	out := rollout.Report{Host: t.Host, At: now, Reason: rep.Reason}
	bySeq := ""
	if rep.Seq != 0 && rep.Seq == h.DesiredSeq {
		bySeq = h.DesiredPath
	}
	switch rep.Result {
	case farmapi.ResultSwitched, farmapi.ResultUpToDate:
		out.Outcome, out.Closure = rollout.OutcomeSwitched, rep.Current
	case farmapi.ResultInstalled:
		out.Outcome, out.Closure = rollout.OutcomeInstalled, bySeq
	case farmapi.ResultFailed:
		out.Outcome, out.Closure = rollout.OutcomeFailed, bySeq
	case farmapi.ResultRolledBack:
		out.Outcome, out.Closure = rollout.OutcomeRolledBack, bySeq
	default: // waiting for window: nothing happened yet
		return rollout.Report{}, false
	}
	return out, out.Closure != ""
}

// Tick moves every active rollout on at now: it halts waves past their
// gate timeout and passes over asleep hosts whose policy is "skip". The
// builder calls it every minute or so; any instance may.
func (r *Rollouts) Tick(ctx context.Context, now time.Time) error {
	active, err := r.State.ActiveRollouts(ctx)
	if err != nil {
		return fmt.Errorf("rollout tick: %w", err)
	}
	var errs []error
	for _, a := range active {
		if a.State.Status != rollout.StatusProgressing {
			continue
		}
		err := r.updateAt(ctx, a.Repo, a.ID, now, func(tx state.RolloutTx, rec *state.Rollout, now time.Time) (rollout.Decision, error) {
			in, err := r.input(ctx, tx, rec, now)
			if err != nil {
				return rollout.Decision{}, err
			}
			return rec.State.Advance(r.Config, in), nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("rollout tick of %d: %w", a.ID, err))
		}
	}
	return errors.Join(errs...)
}

// Resume continues a halted rollout with its next wave (an admin accepts
// the halted wave as it is). It returns an error wrapping
// rollout.ErrNotHalted unless the rollout is halted, and state.ErrNotFound
// for an unknown id.
func (r *Rollouts) Resume(ctx context.Context, id int64) (state.Rollout, error) {
	return r.admin(ctx, id, func(ro *rollout.Rollout, now time.Time) (rollout.Decision, error) {
		return ro.Resume(now)
	})
}

// Abort ends an active rollout: no host gets anything more from it. It
// returns an error wrapping rollout.ErrEnded for an ended one.
func (r *Rollouts) Abort(ctx context.Context, id int64, reason string) (state.Rollout, error) {
	if reason == "" {
		reason = "aborted by an admin"
	}
	return r.admin(ctx, id, func(ro *rollout.Rollout, now time.Time) (rollout.Decision, error) {
		return rollout.Decision{}, ro.Abort(now, reason)
	})
}

func (r *Rollouts) admin(ctx context.Context, id int64, fn func(ro *rollout.Rollout, now time.Time) (rollout.Decision, error)) (state.Rollout, error) {
	cur, err := r.State.Rollout(ctx, id)
	if err != nil {
		return state.Rollout{}, err
	}
	err = r.updateAt(ctx, cur.Repo, id, r.now(), func(_ state.RolloutTx, rec *state.Rollout, now time.Time) (rollout.Decision, error) {
		return fn(rec.State, now)
	})
	if err != nil {
		return state.Rollout{}, err
	}
	return r.State.Rollout(ctx, id)
}

// Rollout returns one rollout (an error wrapping state.ErrNotFound for an
// unknown id).
func (r *Rollouts) Rollout(ctx context.Context, id int64) (state.Rollout, error) {
	return r.State.Rollout(ctx, id)
}

// ActiveRollouts returns the rollouts still progressing or halted, oldest
// first.
func (r *Rollouts) ActiveRollouts(ctx context.Context) ([]state.Rollout, error) {
	return r.State.ActiveRollouts(ctx)
}

// RecentRollouts returns the newest rollouts first, at most limit, of
// repo ("" for every repository).
func (r *Rollouts) RecentRollouts(ctx context.Context, repo string, limit int) ([]state.Rollout, error) {
	return r.State.Rollouts(ctx, repo, limit)
}

// Rollback rolls the fleet, or the hosts req names, back to the closures
// they had at an earlier deployed commit (its deploy evaluation's
// targets): a new rollout of kind rollback, through the waves of the
// repository's latest rollouts, each host getting a new manifest with a
// higher seq. It refuses (ErrRollbackRefused) a commit never deployed, an
// ambiguous prefix, an invalid or unknown host, and (ErrClosureMissing) a
// closure whose narinfo is no longer in the cache.
func (r *Rollouts) Rollback(ctx context.Context, req farmapi.RollbackRequest) (state.Rollout, error) {
	prefix := strings.ToLower(strings.TrimSpace(req.To))
	if len(prefix) < 7 || len(prefix) > 64 || strings.Trim(prefix, "0123456789abcdef") != "" {
		return state.Rollout{}, fmt.Errorf("%w: %q is not a commit id (7 to 64 hex digits)", ErrRollbackRefused, req.To)
	}
	for _, h := range req.Hosts {
		if err := hostname.Validate(h); err != nil {
			return state.Rollout{}, fmt.Errorf("%w: host %q: %v", ErrRollbackRefused, h, err)
		}
	}
	evs, err := r.State.DeployEvaluations(ctx, prefix)
	if err != nil {
		return state.Rollout{}, fmt.Errorf("rollback to %s: %w", prefix, err)
	}
	var matches []state.Evaluation
	seen := map[string]bool{}
	for _, e := range evs {
		if req.Repo != "" && e.Repo != req.Repo {
			continue
		}
		if k := e.Repo + " " + e.Commit; !seen[k] {
			seen[k] = true
			matches = append(matches, e)
		}
	}
	switch {
	case len(matches) == 0:
		return state.Rollout{}, fmt.Errorf("%w: no deploy of a commit %s has finished", ErrRollbackRefused, prefix)
	case len(matches) > 1:
		var names []string
		for _, m := range matches {
			names = append(names, m.Repo+"@"+m.Commit)
		}
		return state.Rollout{}, fmt.Errorf("%w: %s is ambiguous: %s (give more of the commit id, or the repository)", ErrRollbackRefused, prefix, strings.Join(names, ", "))
	}
	ev := matches[0]
	recs, err := r.State.Targets(ctx, ev.ID)
	if err != nil {
		return state.Rollout{}, fmt.Errorf("rollback to %s: %w", ev.Commit, err)
	}
	closures := map[string]string{}
	for _, t := range recs {
		if (t.State == state.TargetBuilt || t.State == state.TargetCached) && hostname.Valid(t.Host) && t.OutPath != "" {
			closures[t.Host] = t.OutPath
		}
	}
	// The waves: those of the repository's latest rollout that has the
	// host. Every host: those the commit's own rollout had, else every
	// host it built.
	recent, err := r.State.Rollouts(ctx, ev.Repo, 100)
	if err != nil {
		return state.Rollout{}, fmt.Errorf("rollback to %s: %w", ev.Commit, err)
	}
	hosts := slices.Clone(req.Hosts)
	if len(hosts) == 0 {
		for _, ro := range recent {
			if ro.State.Kind == rollout.KindPush && ro.State.Commit == ev.Commit {
				for _, t := range ro.State.Targets {
					hosts = append(hosts, t.Host)
				}
				break
			}
		}
	}
	if len(hosts) == 0 {
		for h := range closures {
			hosts = append(hosts, h)
		}
	}
	sort.Strings(hosts)
	hosts = slices.Compact(hosts)
	if len(hosts) == 0 {
		return state.Rollout{}, fmt.Errorf("%w: commit %s deployed no host", ErrRollbackRefused, ev.Commit)
	}
	if r.Cache == nil {
		return state.Rollout{}, errors.New("rollback: no binary cache to check the closures in")
	}
	var missing []string
	for _, h := range hosts {
		if closures[h] == "" {
			return state.Rollout{}, fmt.Errorf("%w: host %s has no closure at commit %s", ErrRollbackRefused, h, ev.Commit)
		}
		_, err := r.Cache.Stat(ctx, cache.NarInfoKey(closures[h]))
		switch {
		case errors.Is(err, cache.ErrNotFound):
			missing = append(missing, h+" "+closures[h])
		case err != nil:
			return state.Rollout{}, fmt.Errorf("rollback: check %s in the cache: %w", closures[h], err)
		}
	}
	if len(missing) > 0 {
		return state.Rollout{}, fmt.Errorf("%w: cannot roll back to %s: %s", ErrClosureMissing, ev.Commit, strings.Join(missing, ", "))
	}

	origin := state.Rollout{Branch: ev.Branch}
	if len(recent) > 0 {
		origin.Remotes = recent[0].Remotes
	}
	targets := make([]rollout.Target, 0, len(hosts))
	for _, h := range hosts {
		t := rollout.Target{Host: h, StorePath: closures[h]}
		for _, ro := range recent {
			if prev, ok := ro.State.Target(h); ok {
				t.Wave, t.Asleep = prev.Wave, prev.Asleep
				break
			}
		}
		targets = append(targets, t)
	}
	var tr transition
	err = r.State.WithRollouts(ctx, ev.Repo, func(tx state.RolloutTx) error {
		var err error
		tr, err = r.begin(ctx, tx, origin, ev.Commit, rollout.KindRollback, targets)
		return err
	})
	if err != nil {
		return state.Rollout{}, fmt.Errorf("rollback to %s: %w", ev.Commit, err)
	}
	r.tell(ctx, tr)
	return tr.rec, nil
}

// stepFunc moves a rollout's state machine at now, inside tx.
type stepFunc func(tx state.RolloutTx, rec *state.Rollout, now time.Time) (rollout.Decision, error)

func (r *Rollouts) update(ctx context.Context, repo string, id int64, fn stepFunc) error {
	return r.updateAt(ctx, repo, id, r.now(), fn)
}

// updateAt runs fn on rollout id of repo under the repository's lock,
// then issues what it offers, and sends the commit status of a change.
func (r *Rollouts) updateAt(ctx context.Context, repo string, id int64, now time.Time, fn stepFunc) error {
	var tr transition
	err := r.State.WithRollouts(ctx, repo, func(tx state.RolloutTx) error {
		rec, err := tx.Get(ctx, id)
		if err != nil {
			return err
		}
		tr, err = r.step(ctx, tx, &rec, now, func(*rollout.Rollout) (rollout.Decision, error) {
			return fn(tx, &rec, now)
		})
		return err
	})
	if err != nil {
		return err
	}
	r.tell(ctx, tr)
	return nil
}

// transition is what one step changed, for the commit status sent after
// the transaction.
type transition struct {
	rec     state.Rollout
	started bool
	halted  bool
	resumed bool
	ended   bool
}

// step applies fn to rec's state machine and carries out its decision in
// tx: the offered hosts get their manifests (a host of a push already on
// its target passes at once, which may open the next wave), the changes
// of status become events, and rec is saved.
func (r *Rollouts) step(ctx context.Context, tx state.RolloutTx, rec *state.Rollout, now time.Time, fn func(*rollout.Rollout) (rollout.Decision, error)) (transition, error) {
	before := rec.State.Status
	skipped := map[string]bool{}
	for host, h := range rec.State.Hosts {
		skipped[host] = h.Skipped
	}
	d, err := fn(rec.State)
	if err != nil {
		return transition{}, err
	}
	// A host just passed over asleep is to be woken again: the notifier
	// wakes it, and it fetches its manifest when it is up.
	for _, host := range d.Wake {
		if skipped[host] {
			continue
		}
		var seq uint64
		if hs, herr := tx.Host(ctx, host); herr == nil {
			seq = hs.DesiredSeq
		} else if !errors.Is(herr, state.ErrNotFound) {
			return transition{}, herr
		}
		if err := tx.Append(string(farmapi.HostWake), farmapi.HostWakeData{Host: host, Seq: seq, Rollout: rec.ID}); err != nil {
			return transition{}, err
		}
	}
	for len(d.Offer) > 0 {
		there, err := r.offer(ctx, tx, rec, d.Offer, now)
		if err != nil {
			return transition{}, err
		}
		data := rolloutData(*rec)
		data.Wave, data.Hosts = d.Wave, d.Offer
		if err := tx.Append(string(farmapi.RolloutWave), data); err != nil {
			return transition{}, err
		}
		if len(there) == 0 {
			break
		}
		d = rec.State.Advance(r.Config, rollout.Input{Now: now, Reports: there})
	}
	after := rec.State.Status
	tr := transition{rec: *rec}
	switch {
	case after == before:
	case after == rollout.StatusHalted:
		tr.halted = true
		h := rec.State.Halt
		if h.Reason == rollout.HaltTimeout {
			if h.Detail, err = r.timeoutDetail(ctx, tx, rec.State, h.Wave); err != nil {
				return transition{}, err
			}
		}
		var seq uint64
		if hs, herr := tx.Host(ctx, h.Host); herr == nil {
			seq = hs.DesiredSeq
		} else if !errors.Is(herr, state.ErrNotFound) {
			return transition{}, herr
		}
		err = tx.Append(string(farmapi.RolloutHalted), farmapi.RolloutHaltedData{
			Rollout: rec.ID, Repo: rec.Repo, Commit: rec.State.Commit, Kind: string(rec.State.Kind),
			Wave: h.Wave, Host: h.Host, Reason: string(h.Reason), Detail: h.Detail, Seq: seq,
		})
	case before == rollout.StatusHalted && after == rollout.StatusProgressing:
		tr.resumed = true
		err = tx.Append(string(farmapi.RolloutResumed), rolloutData(*rec))
	case !after.Active():
		tr.ended = true
		err = tx.Append(string(farmapi.RolloutEnded), rolloutData(*rec))
	}
	if err != nil {
		return transition{}, err
	}
	if rec.ID != 0 {
		if err := tx.Save(ctx, *rec); err != nil {
			return transition{}, err
		}
	}
	return tr, nil
}

// offer issues the manifests of hosts, just offered by rec, inside tx. A
// push's host whose desired closure is its target already gets no new
// manifest; if it also runs it (its last report said so) it is returned as
// having switched, so that it does not hold its wave. A rollback issues a
// new manifest to every host, whatever it runs.
func (r *Rollouts) offer(ctx context.Context, tx state.RolloutTx, rec *state.Rollout, hosts []string, now time.Time) (map[string]rollout.Report, error) {
	there := map[string]rollout.Report{}
	for _, host := range hosts {
		t, ok := rec.State.Target(host)
		if !ok {
			continue
		}
		h, err := tx.Host(ctx, host)
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return nil, err
		}
		if rec.State.Kind == rollout.KindPush && h.DesiredPath == t.StorePath {
			if h.CurrentPath == t.StorePath && (h.LastResult == string(farmapi.ResultSwitched) || h.LastResult == string(farmapi.ResultUpToDate)) {
				there[host] = rollout.Report{Host: host, Closure: t.StorePath, Outcome: rollout.OutcomeSwitched, At: now}
			}
			continue
		}
		seq, err := tx.NextSeq(ctx)
		if err != nil {
			return nil, err
		}
		body, err := signManifest(ctx, r.Signer, r.ManifestTTL, now, deploy.Manifest{Host: host, StorePath: t.StorePath, Commit: rec.State.Commit, Seq: seq, Cache: r.CacheURL})
		if err != nil {
			return nil, err
		}
		if err := tx.SetDesired(ctx, host, t.StorePath, rec.State.Commit, seq, body); err != nil {
			return nil, err
		}
		if err := tx.Append(string(farmapi.HostDesired), farmapi.HostDesiredData{Host: host, StorePath: t.StorePath, Commit: rec.State.Commit, Seq: seq}); err != nil {
			return nil, err
		}
	}
	return there, nil
}

// timeoutDetail says which hosts held wave of ro past the gate timeout:
// those silent since their offer (no report at all: asleep, off, or
// without a working agent) and those that reported without passing
// (waiting for their window, say), with what they last said.
func (r *Rollouts) timeoutDetail(ctx context.Context, tx state.RolloutTx, ro *rollout.Rollout, wave int) (string, error) {
	var silent, behind []string
	for _, t := range ro.Targets {
		hs := ro.Hosts[t.Host]
		if t.Wave != wave || hs == nil || hs.OfferedAt == nil || hs.Waived || hs.Skipped ||
			hs.Outcome == rollout.OutcomeSwitched || (hs.Outcome == rollout.OutcomeInstalled && !r.Config.InstalledHolds) {
			continue
		}
		h, err := tx.Host(ctx, t.Host)
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return "", err
		}
		switch {
		case hs.ReportedAt == nil && h.LastSeen.Before(*hs.OfferedAt):
			silent = append(silent, t.Host)
		case hs.Outcome != "":
			behind = append(behind, fmt.Sprintf("%s (%s)", t.Host, hs.Outcome))
		case h.LastResult != "":
			behind = append(behind, fmt.Sprintf("%s (%s)", t.Host, h.LastResult))
		default:
			behind = append(behind, t.Host)
		}
	}
	d := fmt.Sprintf("not done %s after its offer", r.Config.GateTimeout)
	if len(silent) > 0 {
		d += "; no report from " + strings.Join(silent, ", ")
	}
	if len(behind) > 0 {
		d += "; not switched: " + strings.Join(behind, ", ")
	}
	return d, nil
}

// input is what the builder knows at now for rec: which offered hosts
// with asleep policy "skip", silent since their offer, count as asleep.
// Silent means for AsleepAfter, or for the gate timeout when that is
// shorter: a "skip" host must not halt its wave by its silence alone.
func (r *Rollouts) input(ctx context.Context, tx state.RolloutTx, rec *state.Rollout, now time.Time) (rollout.Input, error) {
	in := rollout.Input{Now: now}
	after := r.AsleepAfter
	if after <= 0 {
		return in, nil
	}
	if g := r.Config.GateTimeout; g > 0 && g < after {
		after = g
	}
	for _, t := range rec.State.Targets {
		hs := rec.State.Hosts[t.Host]
		if t.Asleep != rollout.AsleepSkip || hs.OfferedAt == nil || hs.ReportedAt != nil || now.Sub(*hs.OfferedAt) < after {
			continue
		}
		h, err := tx.Host(ctx, t.Host)
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return in, err
		}
		if h.LastSeen.Before(*hs.OfferedAt) {
			if in.Liveness == nil {
				in.Liveness = map[string]rollout.Liveness{}
			}
			in.Liveness[t.Host] = rollout.LivenessAsleep
		}
	}
	return in, nil
}

// tell sends the commit status of a rollout's change: pending when it
// starts or resumes, failure when it halts, success when complete, error
// when aborted (a superseded rollout's commit keeps its last status).
func (r *Rollouts) tell(ctx context.Context, tr transition) {
	if r.Statuses == nil || tr.rec.State == nil {
		return
	}
	ro := tr.rec.State
	st := forge.Status{State: forge.StatePending}
	switch {
	case ro.Status == rollout.StatusHalted && tr.halted:
		st.State = forge.StateFailure
		st.Description = fmt.Sprintf("rollout halted in wave %d: %s", ro.Halt.Wave, ro.Halt.Detail)
	case ro.Status == rollout.StatusComplete && (tr.ended || tr.started):
		st.State = forge.StateSuccess
		st.Description = completeDescription(ro)
	case ro.Status == rollout.StatusAborted && tr.ended:
		st.State = forge.StateError
		st.Description = "rollout aborted: " + ro.EndReason
	case ro.Status == rollout.StatusProgressing && (tr.started || tr.resumed):
		st.Description = fmt.Sprintf("rolling out: wave %d offered", ro.Wave)
		if ro.Kind == rollout.KindRollback {
			st.Description = fmt.Sprintf("rolling back: wave %d offered", ro.Wave)
		}
	default:
		return
	}
	if err := r.Statuses.sendRollout(ctx, tr.rec, st); err != nil {
		r.log().Warn("rollout commit status", "rollout", tr.rec.ID, "commit", ro.Commit, "err", err)
	}
}

// completeDescription is a complete rollout's status: how many hosts got
// there, and which were passed over asleep or waived by an admin.
func completeDescription(ro *rollout.Rollout) string {
	var skipped, waived []string
	for _, t := range ro.Targets {
		switch hs := ro.Hosts[t.Host]; {
		case hs == nil:
		case hs.Outcome == rollout.OutcomeSwitched || hs.Outcome == rollout.OutcomeInstalled:
		case hs.Skipped:
			skipped = append(skipped, t.Host)
		case hs.Waived:
			waived = append(waived, t.Host)
		}
	}
	n := len(ro.Targets)
	if len(skipped)+len(waived) == 0 {
		return fmt.Sprintf("rolled out to %d hosts", n)
	}
	d := fmt.Sprintf("rolled out to %d of %d hosts", n-len(skipped)-len(waived), n)
	if len(skipped) > 0 {
		d += "; asleep, updated when they wake: " + strings.Join(skipped, ", ")
	}
	if len(waived) > 0 {
		d += "; waived by an admin: " + strings.Join(waived, ", ")
	}
	return d
}

// sendRollout sets st as the "<prefix>/rollout" status of rec's commit on
// every remote of rec that has a status client.
func (s *Statuses) sendRollout(ctx context.Context, rec state.Rollout, st forge.Status) error {
	if s == nil || s.For == nil {
		return nil
	}
	var targets []forge.StatusTarget
	for _, rem := range rec.Remotes {
		if c := s.For(rem); c != nil {
			targets = append(targets, forge.StatusTarget{Client: c, FullName: rem.FullName, Name: rem.URL})
		}
	}
	if len(targets) == 0 {
		return nil
	}
	prefix := s.Context
	if prefix == "" {
		prefix = DefaultStatusContext
	}
	st.Context = prefix + "/rollout"
	st.Description = forgeDescription(st.Description)
	if base := strings.TrimSuffix(s.PublicURL, "/"); base != "" {
		st.TargetURL = fmt.Sprintf("%s/rollouts/%d", base, rec.ID)
	}
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return forge.Report(ctx, log, targets, rec.State.Commit, []forge.Status{st})
}

// forgeDescription cuts a description to what forges keep.
func forgeDescription(s string) string {
	return textcut.Bytes(strings.TrimSpace(s), forge.MaxDescription)
}

func rolloutData(r state.Rollout) farmapi.RolloutData {
	return farmapi.RolloutData{
		Rollout: r.ID, Repo: r.Repo, Commit: r.State.Commit, Kind: string(r.State.Kind),
		Status: string(r.State.Status), Wave: r.State.Wave, Reason: r.State.EndReason,
	}
}

// APIRollout is a stored rollout as the API shows it.
func APIRollout(r state.Rollout) farmapi.Rollout {
	ro := r.State
	out := farmapi.Rollout{
		ID: r.ID, Repo: r.Repo, Commit: ro.Commit, Kind: string(ro.Kind), Status: string(ro.Status),
		Wave: ro.Wave, Started: ro.Started, Ended: ro.Ended, Reason: ro.EndReason,
		Hosts: make([]farmapi.RolloutHost, 0, len(ro.Targets)),
	}
	if h := ro.Halt; h != nil {
		out.Halt = &farmapi.RolloutHalt{Host: h.Host, Wave: h.Wave, Reason: string(h.Reason), Detail: h.Detail, At: h.At}
	}
	for _, t := range ro.Targets {
		hs := ro.Hosts[t.Host]
		out.Hosts = append(out.Hosts, farmapi.RolloutHost{
			Host: t.Host, Wave: t.Wave, StorePath: t.StorePath, Offered: hs.OfferedAt != nil,
			Outcome: string(hs.Outcome), Skipped: hs.Skipped, Waived: hs.Waived,
		})
	}
	return out
}
