package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/homelab-farm/farm/internal/closurediff"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/state"
)

// DefaultDiffTimeout bounds the closure diffs of one target: a slow cache
// must not hold a build lane.
const DefaultDiffTimeout = 2 * time.Minute

// headlineLimit is how long a stored headline may be (a notification's
// line, not a forge's description).
const headlineLimit = 200

func (p *Pipeline) diffTimeout() time.Duration {
	if p.DiffTimeout <= 0 {
		return DefaultDiffTimeout
	}
	return p.DiffTimeout
}

// pullRequest reports whether job builds a pull request (build-only work
// whose webhook was a pull request event), whose closures are diffed
// against the deploy branch's.
func pullRequest(job queue.Job) bool {
	if job.Deploy || len(job.Payload) == 0 {
		return false
	}
	var push struct {
		Event forge.Event `json:"event"`
	}
	return json.Unmarshal(job.Payload, &push) == nil && push.Event == forge.EventPullRequest
}

// previousQuery selects the build a target of job is diffed against as
// "previous": the host's latest earlier build on the same branch, or for
// a pull request the deploy branch's latest.
func previousQuery(job queue.Job, t state.Target) state.BuiltQuery {
	if pullRequest(job) {
		return state.BuiltQuery{Repo: job.Repo, Host: t.Host, DeployOnly: true}
	}
	return state.BuiltQuery{Repo: job.Repo, Host: t.Host, Branch: job.Branch, Before: t.EvalID}
}

// diffBase is a closure a target is compared with.
type diffBase struct {
	against string
	path    string // "" for nothing
	target  state.Target
	eval    state.Evaluation
	err     error // finding the base failed
}

// bases finds what t is compared with: the closure its host runs and the
// previous build.
func (p *Pipeline) bases(ctx context.Context, job queue.Job, t state.Target) []diffBase {
	cur := diffBase{against: farmapi.AgainstCurrent}
	if h, err := p.State.Host(ctx, t.Host); err == nil {
		cur.path = h.CurrentPath
	} else if !errors.Is(err, state.ErrNotFound) {
		cur.err = fmt.Errorf("the host's reported closure: %w", err)
	}
	prev := diffBase{against: farmapi.AgainstPrevious}
	if bt, be, err := p.State.LastBuilt(ctx, previousQuery(job, t)); err == nil {
		prev.path, prev.target, prev.eval = bt.OutPath, bt, be
	} else if !errors.Is(err, state.ErrNotFound) {
		prev.err = fmt.Errorf("the previous build: %w", err)
	}
	return []diffBase{cur, prev}
}

// diffs computes and records t's closure diffs against the closure its
// host runs and against the previous build, with what a host downloads
// (narinfo FileSize in the cache). A diff that cannot be computed is
// recorded with its reason; it never fails the build. The error is for
// the context only.
func (p *Pipeline) diffs(ctx context.Context, job queue.Job, t state.Target) error {
	dctx, cancel := context.WithTimeout(ctx, p.diffTimeout())
	defer cancel()
	src := closurediff.Sources{Store: p.Nix, Cache: p.Cache}
	cur, curErr := src.Closure(dctx, t.OutPath)
	for _, b := range p.bases(dctx, job, t) {
		cd := farmapi.ClosureDiff{Against: b.against, BasePath: b.path, BaseTarget: b.target.ID,
			BaseEval: b.eval.ID, BaseBranch: b.eval.Branch, BaseCommit: b.eval.Commit}
		err := b.err
		if err == nil {
			err = curErr
		}
		if err == nil {
			var d closurediff.Diff
			if d, err = compare(dctx, src, b.path, cur); err == nil {
				fillDiff(&cd, d)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			cd.Error = err.Error()
			p.failure("diff")
			p.log().Warn("closure diff", "host", t.Host, "against", b.against, "err", err)
		}
		data, jerr := json.Marshal(cd)
		if jerr != nil {
			return fmt.Errorf("encode diff of %s: %w", t.Host, jerr)
		}
		rec := state.TargetDiff{TargetID: t.ID, Against: b.against, BasePath: b.path, BaseTarget: b.target.ID,
			Summary: cd.Summary, Headline: cd.Headline, Error: cd.Error, Data: data}
		if err := p.State.PutTargetDiff(ctx, rec); err != nil {
			// A record, not the build: the build goes on.
			p.log().Warn("record closure diff", "host", t.Host, "against", b.against, "err", err)
		}
	}
	return nil
}

// compare diffs the closure of base ("" for none) with cur, filling in
// cur's download sizes from the cache. cur is shared by the calls for one
// target: the sizes filled in are the cache's whatever the base.
func compare(ctx context.Context, src closurediff.Sources, base string, cur closurediff.Closure) (closurediff.Diff, error) {
	var old closurediff.Closure
	if base != "" {
		var err error
		if old, err = src.Closure(ctx, base); err != nil {
			return closurediff.Diff{}, err
		}
	}
	if src.Cache != nil {
		if err := closurediff.FileSizes(ctx, src.Cache, old, cur); err != nil {
			return closurediff.Diff{}, err
		}
	}
	return closurediff.Compute(old, cur), nil
}

// fillDiff copies d into cd, with its summary and headline.
func fillDiff(cd *farmapi.ClosureDiff, d closurediff.Diff) {
	cd.Summary, cd.Headline = d.Summary(), d.Headline(headlineLimit)
	cd.Added, cd.Removed, cd.Changed, cd.Rebuilt = d.Added, d.Removed, d.Changed, d.Rebuilt
	cd.PathsBefore, cd.PathsAfter = d.PathsBefore, d.PathsAfter
	cd.SizeBefore, cd.SizeAfter, cd.SizeDelta = d.SizeBefore, d.SizeAfter, d.SizeDelta
	cd.Download = farmapi.Download{Paths: d.Download.Paths, Bytes: d.Download.Bytes, Unknown: d.Download.Unknown}
	cd.Packages = make([]farmapi.PackageChange, len(d.Packages))
	for i, c := range d.Packages {
		cd.Packages[i] = farmapi.PackageChange{Package: c.Package, Kind: string(c.Kind), From: c.From, To: c.To,
			Direction: c.Direction, SizeBefore: c.SizeBefore, SizeAfter: c.SizeAfter, SizeDelta: c.SizeDelta}
	}
}

// toDiff is the inverse of fillDiff, for the forms closurediff renders.
func toDiff(cd farmapi.ClosureDiff) closurediff.Diff {
	d := closurediff.Diff{Added: cd.Added, Removed: cd.Removed, Changed: cd.Changed, Rebuilt: cd.Rebuilt,
		PathsBefore: cd.PathsBefore, PathsAfter: cd.PathsAfter,
		SizeBefore: cd.SizeBefore, SizeAfter: cd.SizeAfter, SizeDelta: cd.SizeDelta,
		Download: closurediff.Download{Paths: cd.Download.Paths, Bytes: cd.Download.Bytes, Unknown: cd.Download.Unknown},
		Packages: make([]closurediff.Change, len(cd.Packages))}
	for i, c := range cd.Packages {
		d.Packages[i] = closurediff.Change{Package: c.Package, Kind: closurediff.Kind(c.Kind), From: c.From, To: c.To,
			Direction: c.Direction, SizeBefore: c.SizeBefore, SizeAfter: c.SizeAfter, SizeDelta: c.SizeDelta}
	}
	return d
}

// closureDiff decodes a recorded diff.
func closureDiff(d state.TargetDiff) (farmapi.ClosureDiff, error) {
	cd := farmapi.ClosureDiff{Against: d.Against, BasePath: d.BasePath, BaseTarget: d.BaseTarget, Error: d.Error,
		Summary: d.Summary, Headline: d.Headline}
	if len(d.Data) > 0 {
		if err := json.Unmarshal(d.Data, &cd); err != nil {
			return farmapi.ClosureDiff{}, fmt.Errorf("recorded %s diff of target %d: %w", d.Against, d.TargetID, err)
		}
	}
	if cd.Packages == nil {
		cd.Packages = []farmapi.PackageChange{}
	}
	return cd, nil
}

// DiffReader reads recorded diffs; *state.Store is one.
type DiffReader interface {
	Target(ctx context.Context, id int64) (state.Target, error)
	TargetDiffs(ctx context.Context, targetID int64) ([]state.TargetDiff, error)
}

// TargetDiff returns what GET /api/targets/{id}/diff serves: the target's
// recorded diffs against the closure its host runs and against the
// previous build (null where none is recorded). An unknown target is an
// error wrapping state.ErrNotFound.
func TargetDiff(ctx context.Context, r DiffReader, targetID int64) (farmapi.TargetDiff, error) {
	t, err := r.Target(ctx, targetID)
	if err != nil {
		return farmapi.TargetDiff{}, err
	}
	out := farmapi.TargetDiff{Target: t.ID, Eval: t.EvalID, Host: t.Host, OutPath: t.OutPath, State: t.State}
	ds, err := r.TargetDiffs(ctx, targetID)
	if err != nil {
		return farmapi.TargetDiff{}, err
	}
	for _, d := range ds {
		cd, err := closureDiff(d)
		if err != nil {
			return farmapi.TargetDiff{}, err
		}
		switch d.Against {
		case farmapi.AgainstCurrent:
			out.Current = &cd
		case farmapi.AgainstPrevious:
			out.Previous = &cd
		}
	}
	return out, nil
}

// SummaryReader reads diff summaries; *state.Store is one.
type SummaryReader interface {
	DiffSummaries(ctx context.Context, targets []int64, against string) (map[int64]string, error)
}

// CellSummaries returns, for the targets of a hosts-by-commits table, the
// short summary of what each changed against the build before it
// ("+2 ~14 -1 · 38 MiB"; for a pull request, against the deploy branch).
// A target without a computed diff has no entry.
func CellSummaries(ctx context.Context, r SummaryReader, targets []int64) (map[int64]string, error) {
	return r.DiffSummaries(ctx, targets, farmapi.AgainstPrevious)
}

// statusDiff picks the diff a host's commit status tells of: for a pull
// request what merging changes (against the deploy branch), otherwise
// what the host will change from what it runs, or failing that from the
// previous build.
func statusDiff(job queue.Job, ds []state.TargetDiff) (closurediff.Diff, bool) {
	by := map[string]state.TargetDiff{}
	for _, d := range ds {
		if d.Error == "" {
			by[d.Against] = d
		}
	}
	order := []string{farmapi.AgainstCurrent, farmapi.AgainstPrevious}
	if pullRequest(job) {
		order = []string{farmapi.AgainstPrevious}
	}
	for _, a := range order {
		if d, ok := by[a]; ok {
			if cd, err := closureDiff(d); err == nil {
				return toDiff(cd), true
			}
		}
	}
	return closurediff.Diff{}, false
}

// diffLines returns, per target of recs with a recorded diff, the line
// its commit status carries after "<state>: ".
func (p *Pipeline) diffLines(ctx context.Context, job queue.Job, recs []state.Target) map[int64]string {
	lines := map[int64]string{}
	for _, t := range recs {
		if t.State != state.TargetBuilt && t.State != state.TargetCached {
			continue
		}
		ds, err := p.State.TargetDiffs(ctx, t.ID)
		if err != nil {
			p.log().Warn("read closure diffs", "host", t.Host, "err", err)
			continue
		}
		if d, ok := statusDiff(job, ds); ok {
			lines[t.ID] = d.StatusLine(forge.MaxDescription - len(t.State) - len(": "))
		}
	}
	return lines
}

// lastGood finds, for a target that failed, the host's latest earlier
// good build of the branch and what it changed against the build before
// it; nil when there is none.
func (p *Pipeline) lastGood(ctx context.Context, job queue.Job, t state.Target) *farmapi.LastGood {
	bt, be, err := p.State.LastBuilt(ctx, state.BuiltQuery{Repo: job.Repo, Host: t.Host, Branch: job.Branch, Before: t.EvalID})
	if err != nil {
		if !errors.Is(err, state.ErrNotFound) {
			p.log().Warn("last good build", "host", t.Host, "err", err)
		}
		return nil
	}
	lg := &farmapi.LastGood{Target: bt.ID, Commit: be.Commit}
	ds, err := p.State.TargetDiffs(ctx, bt.ID)
	if err != nil {
		p.log().Warn("read closure diffs", "host", t.Host, "err", err)
		return lg
	}
	for _, d := range ds {
		if d.Against == farmapi.AgainstPrevious && d.Error == "" {
			lg.Change = d.Headline
		}
	}
	return lg
}

// desiredDiff is the brief of what deploying t changes on its host.
func (p *Pipeline) desiredDiff(ctx context.Context, t state.Target) *farmapi.DiffBrief {
	ds, err := p.State.TargetDiffs(ctx, t.ID)
	if err != nil {
		p.log().Warn("read closure diffs", "host", t.Host, "err", err)
		return nil
	}
	for _, d := range ds {
		if d.Against == farmapi.AgainstCurrent && d.Error == "" {
			return &farmapi.DiffBrief{Against: d.Against, Target: t.ID, Summary: d.Summary, Headline: d.Headline}
		}
	}
	return nil
}
