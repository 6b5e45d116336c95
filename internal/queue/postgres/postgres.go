// Package postgres is the shared queue: queue.Queue on PostgreSQL through
// pgx, for several builder instances taking work from one database. Claim
// locks rows with FOR UPDATE SKIP LOCKED, so claimers never wait on each
// other; enqueues on one branch serialise on an advisory lock so that
// superseding sees every older job.
//
// internal/state keeps the builder's state in the same database
// (state.OpenPostgres), so the instances are one farm.
//
// The DSN is pgx's: a URL or key=value string. A search_path parameter
// (postgres://…/farm?search_path=myschema) puts the tables in that schema.
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
