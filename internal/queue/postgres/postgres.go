package postgres

import (
	"context"
	"database/sql"
	"fmt"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/queue/sqlqueue"
)

// Open connects to the database at dsn and creates the tables if needed.
func Open(ctx context.Context, dsn string, opts queue.Options) (*sqlqueue.Queue, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres queue: %w", err)
	}
	db.SetMaxOpenConns(16)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres queue: %w", err)
	}
	q, err := sqlqueue.New(ctx, db, db, sqlqueue.Dialect{
		Types:      sqlqueue.PostgresTypes,
		ClaimLock:  "FOR UPDATE SKIP LOCKED",
		LockBranch: lockBranch,
	}, opts)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres queue: %w", err)
	}
	return q, nil
}

// lockBranch takes a transaction-scoped advisory lock on repo and branch.
func lockBranch(ctx context.Context, tx *sql.Tx, repo, branch string) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, repo+"\n"+branch)
	return err
}
