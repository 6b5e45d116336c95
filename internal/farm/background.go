package farm

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/server"
)

// deliveryRetention is how long webhook delivery ids are remembered for
// replay detection: forges redeliver within hours.
const deliveryRetention = 30 * 24 * time.Hour

// pruneDeliveries forgets old delivery ids once a day until ctx ends.
func pruneDeliveries(ctx context.Context, q queue.Queue, log *slog.Logger) {
	t := time.NewTicker(24 * time.Hour)
	defer t.Stop()
	for {
		if n, err := q.PruneDeliveries(ctx, time.Now().Add(-deliveryRetention)); err != nil && ctx.Err() == nil {
			log.Warn("prune webhook deliveries", logErr, err)
		} else if n > 0 {
			log.Info("pruned webhook deliveries", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reloadOnHangup reloads the agent tokens on every SIGHUP until ctx ends.
func reloadOnHangup(ctx context.Context, tokens *server.AgentTokens) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			tokens.Load()
		}
	}
}
