// Package postgres is the shared queue: queue.Queue on PostgreSQL through
// pgx, for several builder instances taking work from one database. Claim
// locks rows with FOR UPDATE SKIP LOCKED, so claimers never wait on each
// other; enqueues on one branch serialise on an advisory lock so that
// superseding sees every older job.
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

var schema = []string{
	`CREATE TABLE IF NOT EXISTS jobs (
		id BIGSERIAL PRIMARY KEY,
		kind TEXT NOT NULL,
		key TEXT NOT NULL UNIQUE,
		repo TEXT NOT NULL,
		branch TEXT NOT NULL,
		commit_id TEXT NOT NULL,
		before_commit TEXT NOT NULL,
		deploy BOOLEAN NOT NULL,
		state TEXT NOT NULL,
		attempts INTEGER NOT NULL,
		max_attempts INTEGER NOT NULL,
		run_after BIGINT NOT NULL,
		worker TEXT NOT NULL,
		lease_until BIGINT NOT NULL,
		token TEXT NOT NULL,
		last_error TEXT NOT NULL,
		result BYTEA,
		payload BYTEA,
		superseded_by BIGINT NOT NULL,
		created_at BIGINT NOT NULL,
		updated_at BIGINT NOT NULL
	)`,
	// Live jobs only: Claim and the dead-letter sweep never read the history.
	`CREATE INDEX IF NOT EXISTS jobs_live ON jobs (kind, id) WHERE state IN ('queued', 'running')`,
	// Superseding looks only at queued jobs of a branch.
	`CREATE INDEX IF NOT EXISTS jobs_branch_queued ON jobs (kind, repo, branch) WHERE state = 'queued'`,
	`CREATE INDEX IF NOT EXISTS jobs_before ON jobs (repo, before_commit)`,
	`CREATE TABLE IF NOT EXISTS job_remotes (
		job_id BIGINT NOT NULL,
		forge TEXT NOT NULL,
		url TEXT NOT NULL,
		full_name TEXT NOT NULL,
		PRIMARY KEY (job_id, forge, url)
	)`,
	`CREATE TABLE IF NOT EXISTS deliveries (
		key TEXT PRIMARY KEY,
		job_id BIGINT NOT NULL,
		received_at BIGINT NOT NULL
	)`,
}

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
		Schema:     schema,
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
