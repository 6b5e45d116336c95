package pipeline

import (
	"context"
	"fmt"

	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/hostname"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/state"
)

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

// record stores the evaluated targets of evaluation evalID: pending, or
// failed with the evaluation's error. A host name that is not valid is
// recorded as a failed target under its placeholder, whatever Nix said of
// it, so that it never becomes a path, a status context or a deploy.
func (p *Pipeline) record(ctx context.Context, job queue.Job, evalID int64, targets []nix.Target) ([]state.Target, error) {
	recs := make([]state.Target, 0, len(targets))
	for _, t := range targets {
		if err := hostname.Validate(t.Host); err != nil {
			t = nix.Target{Host: hostname.Placeholder(t.Host), Kind: t.Kind, System: t.System, Error: err.Error()}
		}
		st := state.Target{EvalID: evalID, Host: t.Host, Kind: t.Kind, System: t.System, DrvPath: t.DrvPath, OutPath: t.OutPath, State: state.TargetPending}
		if t.Error != "" {
			st.State, st.Reason = state.TargetFailed, evalFailedReason+t.Error
		}
		rec, err := p.State.PutTarget(ctx, st)
		if err != nil {
			return nil, err
		}
		if t.Error != "" {
			p.failure("eval")
			p.event(ctx, farmapi.TargetFailed, p.targetEvent(ctx, job, rec))
		}
		recs = append(recs, rec)
	}
	return recs, nil
}
