// Package pipeline is the builder's worker: it claims evaluation jobs from
// the queue, fetches the pushed commit, evaluates every host of the fleet
// flake, builds each host's closure in the lane of its system, pushes it to
// the binary cache, diffs it against the closure the host runs and the
// previous build (what changes, what a host downloads), reports commit
// statuses, and on the deploy branch records each host's desired closure
// with a signed deploy manifest.
//
// Every step is idempotent: a worker killed at any point leaves a job whose
// lease expires, and the worker that claims it next finds what is already
// in the cache and pushes nothing twice.
package pipeline

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/git"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/state"
)

// Pipeline runs evaluation jobs. The zero values of the optional fields
// turn their feature off.
type Pipeline struct {
	State   Store
	Nix     Nix
	Mirrors func(repo string) *git.Mirror
	// CloneURLs returns where to fetch a job's commit from, in order: the
	// remotes it came from, then the repository's others. Nil means the
	// job's remotes' URLs.
	CloneURLs func(job queue.Job) []string
	// SyncRemotes returns the remotes whose deploy branch is fast-forwarded
	// to a deployed commit (nil: none); the remote the commit was fetched
	// from is left alone.
	SyncRemotes func(job queue.Job) []string
	Cache       cache.Backend
	CacheKey    cache.SecretKey

	// Signer signs deploy manifests; without it nothing is deployed.
	Signer deploy.Signer
	// ManifestTTL is how long a manifest is valid; 0 means
	// DefaultManifestTTL. A host's current manifest is renewed when it is
	// served with less than half of that left (see CurrentManifest).
	ManifestTTL time.Duration
	// Now is the clock manifests are issued by; nil means time.Now.
	Now func() time.Time
	// CacheURL is the substituter URL hosts realise closures from.
	CacheURL string
	// Statuses sends commit statuses; nil sends none.
	Statuses *Statuses
	// Rollouts, if set (Signer must be too), rolls a deploy-branch commit
	// out wave by wave instead of deploying to every host at once.
	Rollouts *Rollouts

	FlakeDir     string // default "nix"
	Builders     string // Nix remote builders; "" uses Nix's own setting
	MaxSilent    time.Duration
	BuildTimeout time.Duration
	EvalOptions  nix.EvalOptions
	// BuildRetries is how often a failed build is retried (transient
	// failures: a remote builder that went away); default 1.
	BuildRetries int
	// BuildRetryWait is the wait before the first retry of a build; each
	// later retry waits that much longer. 0 means 2s.
	BuildRetryWait time.Duration
	// LaneJobs is how many targets of one system build at once on this
	// machine; 0 means 2 (Nix parallelises inside each build too, and
	// shares what they share). Each remote build machine of the system adds
	// its max jobs.
	LaneJobs int
	// DiffTimeout bounds the closure diffs of one target; 0 means
	// DefaultDiffTimeout.
	DiffTimeout time.Duration

	LogDir string // build logs, one file per target
	// GCRootDir holds one garbage-collector root per host (its latest
	// build); empty: none.
	GCRootDir string
	Log       *slog.Logger

	// Metrics, if set, is told about durations and outcomes.
	Metrics Metrics
}

// Metrics receives the pipeline's measurements.
type Metrics interface {
	EvalDuration(d time.Duration)
	BuildDuration(system string, d time.Duration)
	PushDuration(d time.Duration, bytes int64)
	Failure(kind string)
}

// Nix is what the pipeline asks of Nix; *nix.Client is the real one.
// Implementations are safe for concurrent use (the lanes of one job build
// at once).
type Nix interface {
	// Eval evaluates every host of flake. A host that does not evaluate,
	// or whose attribute name is not a valid host name, comes back as a
	// Target with Error set (nix.TargetsFromNames); the error is for
	// failing to list the hosts at all.
	Eval(ctx context.Context, flake string, opts nix.EvalOptions) ([]nix.Target, error)
	// Capacity returns where builds run: the systems this machine builds
	// itself and the remote machines of builders ("" means Nix's
	// configured ones), as Nix itself reads them.
	Capacity(ctx context.Context, builders string) (nix.Capacity, error)
	// Realise builds drvPath (or substitutes its outputs) and returns its
	// output paths. A build that ran and failed is a *nix.Error whose
	// Stderr says why; any other error is taken as transient (retried).
	Realise(ctx context.Context, drvPath string, opts nix.BuildOptions) ([]string, error)
	// PathInfo returns the closure of paths with what the store records
	// of each path (what a push uploads; see cache.Store).
	PathInfo(ctx context.Context, paths ...string) ([]nix.PathInfo, error)
	// ClosureSizes returns every path of root's closure with its NAR size
	// (for closure diffs), and an error wrapping nix.ErrNotInStore when the
	// store lacks root.
	ClosureSizes(ctx context.Context, root string) (map[string]uint64, error)
}

var _ Nix = (*nix.Client)(nil)

// Store is what the pipeline records in the builder's state; *state.Store
// is the real one, on SQLite or PostgreSQL. Implementations are safe for
// concurrent use. Lookups of an evaluation or host that does not exist
// return an error wrapping state.ErrNotFound.
type Store interface {
	// StartEvaluation records the evaluation of a job, or returns the one
	// recorded by an earlier attempt (created is false then).
	StartEvaluation(ctx context.Context, e state.Evaluation) (ev state.Evaluation, created bool, err error)
	SetSourceHash(ctx context.Context, id int64, hash string) error
	FinishEvaluation(ctx context.Context, id int64, state, sourceHash, errMsg string) error
	// FindBySource returns the latest finished evaluation of repo whose
	// flake source hashed to hash.
	FindBySource(ctx context.Context, repo, hash string) (state.Evaluation, error)

	// PutTarget records a host's target in an evaluation, replacing what
	// an earlier attempt recorded, and returns it with its id.
	PutTarget(ctx context.Context, t state.Target) (state.Target, error)
	SetTargetState(ctx context.Context, id int64, state, reason string) error
	Targets(ctx context.Context, evalID int64) ([]state.Target, error)
	// LastBuilt returns the host's target with a closure in the latest
	// evaluation q selects that has one.
	LastBuilt(ctx context.Context, q state.BuiltQuery) (state.Target, state.Evaluation, error)
	// PutTargetDiff records a target's closure diff against one base,
	// replacing an earlier attempt's; TargetDiffs returns them.
	PutTargetDiff(ctx context.Context, d state.TargetDiff) error
	TargetDiffs(ctx context.Context, targetID int64) ([]state.TargetDiff, error)

	Host(ctx context.Context, name string) (state.Host, error)
	// NextSeq returns a deploy sequence number higher than every one
	// handed out before, to any host.
	NextSeq(ctx context.Context) (uint64, error)
	// SetDesired records the closure a host should run with its signed
	// manifest; a seq not above the host's desired seq changes nothing.
	SetDesired(ctx context.Context, host, path, commit string, seq uint64, manifest []byte) error
	// RenewManifest replaces host's manifest with a renewal if its desired
	// seq is still seq, and reports whether it did.
	RenewManifest(ctx context.Context, host string, seq uint64, manifest []byte) (bool, error)

	// Append adds an event to the log; data is marshalled to JSON.
	Append(ctx context.Context, typ string, data any) (state.Event, error)
}

var _ Store = (*state.Store)(nil)

func (p *Pipeline) log() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}

func (p *Pipeline) failure(kind string) {
	if p.Metrics != nil {
		p.Metrics.Failure(kind)
	}
}

// Process runs one claimed evaluation job and returns the result to store
// with it. Its error means the job should be retried; the caller holds the
// job's lease (see Pool).
func (p *Pipeline) Process(ctx context.Context, job queue.Job) ([]byte, error) {
	res, err := p.run(ctx, job)
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

// Result is stored with a completed job.
type Result struct {
	EvalID int64 `json:"eval_id"`
	Hosts  int   `json:"hosts"`
	Failed int   `json:"failed"`
}

// event appends an event to the log; data is typ's payload struct. A
// failure is logged: the event log is a record, not the state itself.
func (p *Pipeline) event(ctx context.Context, typ farmapi.EventType, data any) {
	if _, err := p.State.Append(ctx, string(typ), data); err != nil {
		p.log().Error("append event", "type", typ, "err", err)
	}
}

// run evaluates, builds, pushes, reports and records one job. An error
// means the job should be retried (fetch or storage failures); host
// failures are results, not errors.
func (p *Pipeline) run(ctx context.Context, job queue.Job) (Result, error) {
	ev, created, err := p.State.StartEvaluation(ctx, state.Evaluation{
		JobID: job.ID, Repo: job.Repo, Branch: job.Branch, Commit: job.Commit, Deploy: job.Deploy,
	})
	if err != nil {
		return Result{}, err
	}
	evData := farmapi.EvalData{Eval: ev.ID, Repo: job.Repo, Branch: job.Branch, Commit: job.Commit, Resumed: !created}
	p.event(ctx, farmapi.EvalStarted, evData)
	if p.Statuses != nil && p.Statuses.EvaluationURL(ev.ID) != "" {
		// The pool's "pending" could not link the evaluation's page: it
		// did not exist yet.
		p.report(ctx, job, ev.ID, forge.Status{State: forge.StatePending, Description: "evaluating"}, nil)
	}

	mirror := p.Mirrors(job.Repo)
	var remotes []string
	if p.CloneURLs != nil {
		remotes = p.CloneURLs(job)
	} else {
		for _, r := range job.Remotes {
			remotes = append(remotes, r.URL)
		}
	}
	fetchedFrom, err := mirror.Fetch(ctx, remotes, job.Commit)
	if err != nil {
		return Result{}, err
	}
	flakeDir := p.FlakeDir
	if flakeDir == "" {
		flakeDir = "nix"
	}
	source, err := mirror.TreeHash(ctx, job.Commit, flakeDir)
	if err != nil {
		return Result{}, err
	}

	start := time.Now()
	targets, reused, err := p.evaluate(ctx, job.Repo, mirror.FlakeRef(job.Commit, flakeDir), source)
	if err != nil && ctx.Err() == nil && nix.ClassifyEval(err) == nix.Permanent {
		return p.evalFailed(ctx, job, ev.ID, evData, source, err)
	}
	if err != nil {
		return Result{}, err
	}
	if p.Metrics != nil && !reused {
		p.Metrics.EvalDuration(time.Since(start))
	}
	if err := p.State.SetSourceHash(ctx, ev.ID, source); err != nil {
		return Result{}, err
	}

	recs, err := p.record(ctx, job, ev.ID, targets)
	if err != nil {
		return Result{}, err
	}

	if err := p.build(ctx, job, recs); err != nil {
		return Result{}, err
	}
	recs, err = p.State.Targets(ctx, ev.ID)
	if err != nil {
		return Result{}, err
	}

	res := Result{EvalID: ev.ID, Hosts: len(recs)}
	for _, t := range recs {
		if t.State == state.TargetFailed {
			res.Failed++
		}
	}
	if job.Deploy && p.Signer != nil {
		if err := p.deploy(ctx, job, mirror, recs); err != nil {
			return Result{}, err
		}
	}
	if job.Deploy && p.SyncRemotes != nil {
		p.syncRemotes(ctx, job, mirror, fetchedFrom)
	}
	overall := forge.Status{State: forge.StateSuccess, Description: CountTargets(recs).String()}
	if res.Failed > 0 {
		overall.State = forge.StateFailure
	}
	p.report(ctx, job, ev.ID, overall, recs)

	evState := state.EvalDone
	if res.Failed > 0 {
		evState = state.EvalFailed
	}
	if err := p.State.FinishEvaluation(ctx, ev.ID, evState, source, ""); err != nil {
		return Result{}, err
	}
	evData.State, evData.Failed, evData.Hosts = evState, res.Failed, res.Hosts
	p.event(ctx, farmapi.EvalFinished, evData)
	return res, nil
}

// evalFailed ends an evaluation that failed for a reason a retry cannot
// change (the flake's own error, see nix.ClassifyEval): it fails at once,
// the forge is told Nix's message, and the job is done.
func (p *Pipeline) evalFailed(ctx context.Context, job queue.Job, evID int64, evData farmapi.EvalData, source string, evalErr error) (Result, error) {
	p.failure("eval")
	msg := nix.DescribeError(evalErr, forge.MaxDescription)
	p.report(ctx, job, evID, forge.Status{State: forge.StateFailure, Description: msg}, nil)
	if err := p.State.FinishEvaluation(ctx, evID, state.EvalFailed, source, evalErr.Error()); err != nil {
		return Result{}, err
	}
	evData.State, evData.Error = state.EvalFailed, msg
	p.event(ctx, farmapi.EvalFinished, evData)
	return Result{EvalID: evID}, nil
}
