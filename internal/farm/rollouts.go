package farm

import (
	"context"
	"log/slog"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/rollout"
	"github.com/homelab-farm/farm/internal/state"
)

// rolloutTick is how often the rollouts are moved on without a report:
// waves past their gate timeout halt, asleep hosts are passed over.
const rolloutTick = time.Minute

// newRollouts returns the rollouts of the pipeline p: the same state,
// signer, cache and statuses, the waves read from the fleet flake's
// farm.deploy output, the gate timeout and asleep-after of cfg.
func newRollouts(cfg *config.Config, p *pipeline.Pipeline, st *state.Store, nc *nix.Client, backend cache.Backend) *pipeline.Rollouts {
	return &pipeline.Rollouts{
		State: st, Signer: p.Signer, ManifestTTL: p.ManifestTTL, CacheURL: p.CacheURL, Cache: backend,
		Config:      rollout.Config{GateTimeout: cfg.Serve.RolloutGateTimeout},
		AsleepAfter: cfg.Serve.RolloutAsleepAfter,
		Settings:    nc.DeploySettings,
		Statuses:    p.Statuses,
		Log:         p.Log,
	}
}

// tickRollouts moves the rollouts on every interval until ctx ends.
func tickRollouts(ctx context.Context, r *pipeline.Rollouts, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := r.Tick(ctx, now); err != nil && ctx.Err() == nil {
				log.Warn("rollout tick", logErr, err)
			}
		}
	}
}
