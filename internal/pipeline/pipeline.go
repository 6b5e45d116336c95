// Package pipeline is the builder's worker: it claims evaluation jobs from
// the queue, fetches the pushed commit, evaluates every host of the fleet
// flake, builds each host's closure in the lane of its system, pushes it to
// the binary cache, reports commit statuses, and on the deploy branch
// records each host's desired closure with a signed deploy manifest.
//
// Every step is idempotent: a worker killed at any point leaves a job whose
// lease expires, and the worker that claims it next finds what is already
// in the cache and pushes nothing twice.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/git"
	"github.com/homelab-farm/farm/internal/hostname"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/parallel"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/safepath"
	"github.com/homelab-farm/farm/internal/state"
)

// Event types appended to the state's event log.
const (
	EventEvalQueued     = "evaluation.queued" // appended by the webhook handler
	EventEvalStarted    = "evaluation.started"
	EventEvalFinished   = "evaluation.finished"
	EventTargetBuilding = "target.building"
	EventTargetBuilt    = "target.built"
	EventTargetCached   = "target.cached"
	EventTargetFailed   = "target.failed"
	EventTargetSkipped  = "target.skipped"
	EventDesiredChanged = "host.desired"
	EventRemoteSynced   = "remote.synced"
)

// Pipeline runs evaluation jobs. The zero values of the optional fields
// turn their feature off.
type Pipeline struct {
	State   *state.Store
	Nix     *nix.Client
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

	FlakeDir     string // default "nix"
	Builders     string // Nix remote builders; "" uses Nix's own setting
	MaxSilent    time.Duration
	BuildTimeout time.Duration
	EvalOptions  nix.EvalOptions
	// BuildRetries is how often a failed build is retried (transient
	// failures: a remote builder that went away); default 1.
	BuildRetries int
	// LaneJobs is how many targets of one system build at once; 0 means 2
	// (Nix parallelises inside each build too, and shares what they share).
	LaneJobs int

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

func (p *Pipeline) event(ctx context.Context, typ string, data any) {
	if _, err := p.State.Append(ctx, typ, data); err != nil {
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
	evData := map[string]any{"eval": ev.ID, "repo": job.Repo, "branch": job.Branch, "commit": job.Commit, "resumed": !created}
	p.event(ctx, EventEvalStarted, evData)

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
	if err != nil {
		return Result{}, err
	}
	if p.Metrics != nil && !reused {
		p.Metrics.EvalDuration(time.Since(start))
	}
	if err := p.State.SetSourceHash(ctx, ev.ID, source); err != nil {
		return Result{}, err
	}

	recs := make([]state.Target, 0, len(targets))
	for _, t := range targets {
		st := state.Target{EvalID: ev.ID, Host: t.Host, Kind: t.Kind, System: t.System, DrvPath: t.DrvPath, OutPath: t.OutPath, State: state.TargetPending}
		if t.Error != "" {
			st.State, st.Reason = state.TargetFailed, "evaluation failed: "+t.Error
		}
		rec, err := p.State.PutTarget(ctx, st)
		if err != nil {
			return Result{}, err
		}
		if t.Error != "" {
			p.failure("eval")
			p.event(ctx, EventTargetFailed, targetEvent(rec))
		}
		recs = append(recs, rec)
	}

	if err := p.build(ctx, recs); err != nil {
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
		for _, remote := range p.SyncRemotes(job) {
			if remote == fetchedFrom {
				continue
			}
			if err := mirror.FastForward(ctx, remote, job.Branch, job.Commit); err != nil {
				p.log().Warn("remote not kept in step", "remote", git.Redact(remote), "branch", job.Branch, "err", err)
				continue
			}
			p.event(ctx, EventRemoteSynced, map[string]any{"repo": job.Repo, "remote": git.Redact(remote), "branch": job.Branch, "commit": job.Commit})
		}
	}
	overall := forge.Status{State: forge.StateSuccess, Description: fmt.Sprintf("%d hosts built", len(recs))}
	if res.Failed > 0 {
		overall = forge.Status{State: forge.StateFailure, Description: fmt.Sprintf("%d of %d hosts failed", res.Failed, len(recs))}
	}
	p.report(ctx, job, overall, recs)

	evState := state.EvalDone
	if res.Failed > 0 {
		evState = state.EvalFailed
	}
	if err := p.State.FinishEvaluation(ctx, ev.ID, evState, source, ""); err != nil {
		return Result{}, err
	}
	evData["state"], evData["failed"], evData["hosts"] = evState, res.Failed, res.Hosts
	p.event(ctx, EventEvalFinished, evData)
	return res, nil
}

// evaluate returns the targets of the flake, reusing those of an earlier
// evaluation of the same source.
func (p *Pipeline) evaluate(ctx context.Context, repo, flake, source string) ([]nix.Target, bool, error) {
	if prev, err := p.State.FindBySource(ctx, repo, source); err == nil {
		old, err := p.State.Targets(ctx, prev.ID)
		if err == nil && len(old) > 0 && !anyEvalFailure(old) {
			out := make([]nix.Target, len(old))
			for i, t := range old {
				out[i] = nix.Target{Host: t.Host, Kind: t.Kind, System: t.System, DrvPath: t.DrvPath, OutPath: t.OutPath}
			}
			return out, true, nil
		}
	}
	targets, err := p.Nix.Eval(ctx, flake, p.EvalOptions)
	if err != nil {
		return nil, false, fmt.Errorf("evaluate %s: %w", flake, err)
	}
	return targets, false, nil
}

func anyEvalFailure(ts []state.Target) bool {
	for _, t := range ts {
		if t.DrvPath == "" || !hostname.Valid(t.Host) {
			return true
		}
	}
	return false
}

// build runs one lane per system; within a lane, LaneJobs targets build at
// once.
func (p *Pipeline) build(ctx context.Context, recs []state.Target) error {
	systems, err := p.Nix.Systems(ctx, p.Builders)
	if err != nil {
		return fmt.Errorf("buildable systems: %w", err)
	}
	lanes := map[string][]state.Target{}
	for _, t := range recs {
		if t.State == state.TargetPending {
			lanes[t.System] = append(lanes[t.System], t)
		}
	}
	names := make([]string, 0, len(lanes))
	for s := range lanes {
		names = append(names, s)
	}
	sort.Strings(names)
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	jobs := p.LaneJobs
	if jobs <= 0 {
		jobs = 2
	}
	for i, system := range names {
		wg.Go(func() {
			buildable := slices.Contains(systems, system)
			targets := lanes[system]
			errs[i] = parallel.ForEach(ctx, len(targets), jobs, func(k int) error {
				return p.buildTarget(ctx, targets[k], buildable)
			})
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func targetEvent(t state.Target) map[string]any {
	return map[string]any{"eval": t.EvalID, "target": t.ID, "host": t.Host, "system": t.System,
		"out_path": t.OutPath, "state": t.State, "reason": t.Reason}
}

// buildTarget takes one target to cached, skipped, built or failed. Its
// error is for storage failures only.
func (p *Pipeline) buildTarget(ctx context.Context, t state.Target, buildable bool) error {
	set := func(st, reason, event string) error {
		t.State, t.Reason = st, reason
		if err := p.State.SetTargetState(ctx, t.ID, st, reason); err != nil {
			return err
		}
		p.event(ctx, event, targetEvent(t))
		return nil
	}
	if _, err := p.Cache.Stat(ctx, cache.NarInfoKey(t.OutPath)); err == nil {
		return set(state.TargetCached, "", EventTargetCached)
	} else if !errors.Is(err, cache.ErrNotFound) {
		return fmt.Errorf("check cache for %s: %w", t.Host, err)
	}
	if !buildable {
		return set(state.TargetSkipped, "no builder for "+t.System, EventTargetSkipped)
	}
	if err := set(state.TargetBuilding, "", EventTargetBuilding); err != nil {
		return err
	}
	logFile, err := p.openLog(t.ID)
	if err != nil {
		return err
	}
	defer logFile.Close()

	start := time.Now()
	var buildErr error
	for attempt := 0; attempt <= p.buildRetries(); attempt++ {
		if attempt > 0 {
			fmt.Fprintf(logFile, "\n--- retrying (attempt %d) ---\n", attempt+1)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 2 * time.Second):
			}
		}
		_, buildErr = p.Nix.Realise(ctx, t.DrvPath, nix.BuildOptions{
			MaxSilent: p.MaxSilent, Timeout: p.BuildTimeout, Builders: p.Builders, Log: logFile,
			AddRoot: p.gcRoot(t.Host),
		})
		if buildErr == nil || ctx.Err() != nil || !transient(buildErr) {
			break
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if p.Metrics != nil {
		p.Metrics.BuildDuration(t.System, time.Since(start))
	}
	p.uploadLog(ctx, t)
	if buildErr != nil {
		p.failure("build")
		return set(state.TargetFailed, "build failed: "+lastLine(buildErr.Error()), EventTargetFailed)
	}

	pushStart := time.Now()
	pusher := &cache.Pusher{Backend: p.Cache, Key: p.CacheKey, Store: p.Nix, Log: p.Log}
	res, err := pusher.Push(ctx, t.OutPath)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.failure("push")
		return set(state.TargetFailed, "push failed: "+err.Error(), EventTargetFailed)
	}
	if p.Metrics != nil {
		p.Metrics.PushDuration(time.Since(pushStart), res.FileBytes)
	}
	return set(state.TargetBuilt, fmt.Sprintf("pushed %d paths", res.Uploaded), EventTargetBuilt)
}

func (p *Pipeline) buildRetries() int {
	if p.BuildRetries < 0 {
		return 0
	}
	if p.BuildRetries == 0 {
		return 1
	}
	return p.BuildRetries
}

// transient reports whether a build failure may pass on retry: a remote
// builder that went away, not a build that failed on its own.
func transient(err error) bool {
	var nerr *nix.Error
	if !errors.As(err, &nerr) {
		return true
	}
	for _, s := range []string{"cannot connect", "Connection refused", "Connection reset", "unexpected end-of-file", "No space left"} {
		if containsFold(nerr.Stderr, s) {
			return true
		}
	}
	return false
}

// gcRoot is the garbage-collector root of a host's latest build: its
// closure stays in the builder's store until a newer build replaces it.
func (p *Pipeline) gcRoot(host string) string {
	if p.GCRootDir == "" {
		return ""
	}
	root, err := safepath.Join(p.GCRootDir, host)
	if err != nil {
		p.log().Warn("no gc root", "err", err)
		return ""
	}
	if err := os.MkdirAll(p.GCRootDir, 0o755); err != nil {
		p.log().Warn("gc root directory", "err", err)
		return ""
	}
	return root
}

// LogPath is where the build log of a target is kept.
func (p *Pipeline) LogPath(targetID int64) string {
	return filepath.Join(p.LogDir, strconv.FormatInt(targetID, 10)+".log")
}

func (p *Pipeline) openLog(id int64) (*os.File, error) {
	if err := os.MkdirAll(p.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	f, err := os.OpenFile(p.LogPath(id), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open build log: %w", err)
	}
	return f, nil
}

func (p *Pipeline) uploadLog(ctx context.Context, t state.Target) {
	f, err := os.Open(p.LogPath(t.ID))
	if err != nil {
		return
	}
	defer f.Close()
	fi, _ := f.Stat()
	if err := cache.PutLog(ctx, p.Cache, t.DrvPath, io.LimitReader(f, fi.Size()), fi.Size()); err != nil {
		p.log().Warn("upload build log", "host", t.Host, "err", err)
	}
}
