package farm

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/queue/postgres"
	"github.com/homelab-farm/farm/internal/queue/sqlite"
	"github.com/homelab-farm/farm/internal/state"
)

func openQueue(ctx context.Context, cfg *config.Config) (queue.Queue, error) {
	opts := queue.Options{MaxAttempts: cfg.Queue.MaxAttempts}
	u := cfg.Queue.URL
	switch {
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		return postgres.Open(ctx, u, opts)
	case u == "", u == "sqlite:":
		return sqlite.Open(ctx, filepath.Join(cfg.StateDir, "queue.db"), opts)
	case strings.HasPrefix(u, "sqlite:"):
		return sqlite.Open(ctx, strings.TrimPrefix(u, "sqlite:"), opts)
	}
	return nil, fmt.Errorf("queue URL: want sqlite:[PATH] or postgres://…")
}

// openState opens the state: in the PostgreSQL database when one is
// configured (carrying over the deploy sequence of a state.db left in the
// state directory), else in the SQLite file state.db there.
func openState(ctx context.Context, cfg *config.Config, log *slog.Logger) (*state.Store, error) {
	file := filepath.Join(cfg.StateDir, "state.db")
	if !config.IsPostgresURL(cfg.Database) {
		return state.Open(ctx, file)
	}
	st, err := state.OpenPostgres(ctx, cfg.Database, log)
	if err != nil {
		return nil, err
	}
	seq, err := state.CarrySeq(ctx, st, file)
	if err != nil {
		st.Close()
		return nil, err
	}
	if seq > 0 {
		log.Info("deploy sequence kept above the SQLite state's", logPath, file, "seq", seq)
	}
	return st, nil
}

func mustAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
