package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/safepath"
	"github.com/homelab-farm/farm/internal/state"
	"golang.org/x/sync/errgroup"
)

// build runs one lane per system. A lane builds as many targets at once
// as its system has build slots (Lanes); a system no builder takes is
// skipped.
func (p *Pipeline) build(ctx context.Context, job queue.Job, recs []state.Target) error {
	capa, err := p.Nix.Capacity(ctx, p.Builders)
	if err != nil {
		return fmt.Errorf("build capacity: %w", err)
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
	for i, system := range names {
		wg.Go(func() {
			errs[i] = p.lane(ctx, job, lanes[system], capa.Builds(system), max(1, p.Lanes(capa, system)))
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Lanes is how many targets of system build at once: LaneJobs (default 2)
// when this machine builds system itself, plus the max jobs of every remote
// machine that builds it; 0 when nothing builds it.
func (p *Pipeline) Lanes(capa nix.Capacity, system string) int {
	n := capa.RemoteJobs(system)
	if capa.Local(system) {
		jobs := p.LaneJobs
		if jobs <= 0 {
			jobs = 2
		}
		n += jobs
	}
	return n
}

// lane builds the targets of one system, jobs at once. After the first
// error no further target starts; it returns that error, or the context's
// when it ended.
func (p *Pipeline) lane(ctx context.Context, job queue.Job, targets []state.Target, buildable bool, jobs int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, t := range targets {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := p.buildTarget(ctx, job, &t, buildable); err != nil {
				return err
			}
			if t.State == state.TargetBuilt || t.State == state.TargetCached {
				return p.diffs(ctx, job, t)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// targetEvent is the payload of t's Target* events; a failure carries
// the host's last good build of the branch.
func (p *Pipeline) targetEvent(ctx context.Context, job queue.Job, t state.Target) farmapi.TargetData {
	d := farmapi.TargetData{Eval: t.EvalID, Target: t.ID, Host: t.Host, System: t.System,
		OutPath: t.OutPath, State: t.State, Reason: t.Reason}
	if t.State == state.TargetFailed {
		d.LastGood = p.lastGood(ctx, job, t)
	}
	return d
}

// buildTarget takes one target to cached, skipped, built or failed,
// updating *t. Its error is for storage failures only.
func (p *Pipeline) buildTarget(ctx context.Context, job queue.Job, t *state.Target, buildable bool) error {
	set := func(st, reason string, event farmapi.EventType) error {
		t.State, t.Reason = st, reason
		if err := p.State.SetTargetState(ctx, t.ID, st, reason); err != nil {
			return err
		}
		p.event(ctx, event, p.targetEvent(ctx, job, *t))
		return nil
	}
	if _, err := p.Cache.Stat(ctx, cache.NarInfoKey(t.OutPath)); err == nil {
		return set(state.TargetCached, "", farmapi.TargetCached)
	} else if !errors.Is(err, cache.ErrNotFound) {
		return fmt.Errorf("check cache for %s: %w", t.Host, err)
	}
	if !buildable {
		return set(state.TargetSkipped, "no builder for "+t.System, farmapi.TargetSkipped)
	}
	if err := set(state.TargetBuilding, "", farmapi.TargetBuilding); err != nil {
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
			case <-time.After(time.Duration(attempt) * p.buildRetryWait()):
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
	p.uploadLog(ctx, *t)
	if buildErr != nil {
		p.failure("build")
		return set(state.TargetFailed, buildFailure(buildErr), farmapi.TargetFailed)
	}

	pushStart := time.Now()
	pusher := &cache.Pusher{Backend: p.Cache, Key: p.CacheKey, Store: p.Nix, Log: p.log()}
	res, err := pusher.Push(ctx, t.OutPath)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.failure("push")
		return set(state.TargetFailed, "push failed: "+err.Error(), farmapi.TargetFailed)
	}
	if p.Metrics != nil {
		p.Metrics.PushDuration(time.Since(pushStart), res.FileBytes)
	}
	return set(state.TargetBuilt, fmt.Sprintf("pushed %d paths", res.Uploaded), farmapi.TargetBuilt)
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

func (p *Pipeline) buildRetryWait() time.Duration {
	if p.BuildRetryWait <= 0 {
		return 2 * time.Second
	}
	return p.BuildRetryWait
}

// buildFailure is a failed build's reason: which remote machines could not
// be used and why, when no machine could take the build, else the last line
// of Nix's error.
func buildFailure(err error) string {
	var nerr *nix.Error
	if errors.As(err, &nerr) {
		if reason := nix.RemoteBuildReason(nerr.Stderr); reason != "" {
			return "build failed: " + reason
		}
	}
	return "build failed: " + nix.DescribeBuildError(err)
}

// transient reports whether a build failure may pass on retry: a remote
// builder that went away, not a build that failed on its own.
func transient(err error) bool {
	var nerr *nix.Error
	if !errors.As(err, &nerr) {
		return true
	}
	stderr := strings.ToLower(nerr.Stderr)
	for _, s := range []string{"cannot connect", "connection refused", "connection reset", "unexpected end-of-file", "no space left"} {
		if strings.Contains(stderr, s) {
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
