package sqlqueue

import "strings"

// Types are the column types that differ between databases. A schema is
// written once with the placeholders {id}, {int}, {int64}, {bool} and {blob}
// and expanded for each database by Expand.
type Types struct {
	ID    string // an auto-assigned 64-bit primary key
	Int   string // a 32-bit or wider integer
	Int64 string // a 64-bit integer
	Bool  string
	Blob  string // bytes
}

// SQLiteTypes are SQLite's column types.
var SQLiteTypes = Types{ID: "INTEGER PRIMARY KEY AUTOINCREMENT", Int: "INTEGER", Int64: "INTEGER", Bool: "INTEGER", Blob: "BLOB"}

// PostgresTypes are PostgreSQL's column types.
var PostgresTypes = Types{ID: "BIGSERIAL PRIMARY KEY", Int: "INTEGER", Int64: "BIGINT", Bool: "BOOLEAN", Blob: "BYTEA"}

// Expand returns schema with the type placeholders replaced by ty's types.
func (ty Types) Expand(schema []string) []string {
	r := strings.NewReplacer("{id}", ty.ID, "{int}", ty.Int, "{int64}", ty.Int64, "{bool}", ty.Bool, "{blob}", ty.Blob)
	out := make([]string, len(schema))
	for i, stmt := range schema {
		out[i] = r.Replace(stmt)
	}
	return out
}

// Schema is the queue's schema, run (idempotently) at New.
var Schema = []string{
	`CREATE TABLE IF NOT EXISTS jobs (
		id {id},
		kind TEXT NOT NULL,
		key TEXT NOT NULL UNIQUE,
		repo TEXT NOT NULL,
		branch TEXT NOT NULL,
		commit_id TEXT NOT NULL,
		before_commit TEXT NOT NULL,
		deploy {bool} NOT NULL,
		state TEXT NOT NULL,
		attempts {int} NOT NULL,
		max_attempts {int} NOT NULL,
		run_after {int64} NOT NULL,
		worker TEXT NOT NULL,
		lease_until {int64} NOT NULL,
		token TEXT NOT NULL,
		last_error TEXT NOT NULL,
		result {blob},
		payload {blob},
		superseded_by {int64} NOT NULL,
		created_at {int64} NOT NULL,
		updated_at {int64} NOT NULL
	)`,
	// Live jobs only: Claim and the dead-letter sweep never read the history.
	`CREATE INDEX IF NOT EXISTS jobs_live ON jobs (kind, id) WHERE state IN ('queued', 'running')`,
	// Superseding looks only at queued jobs of a branch.
	`CREATE INDEX IF NOT EXISTS jobs_branch_queued ON jobs (kind, repo, branch) WHERE state = 'queued'`,
	`CREATE INDEX IF NOT EXISTS jobs_before ON jobs (repo, before_commit)`,
	`CREATE TABLE IF NOT EXISTS job_remotes (
		job_id {int64} NOT NULL,
		forge TEXT NOT NULL,
		url TEXT NOT NULL,
		full_name TEXT NOT NULL,
		PRIMARY KEY (job_id, forge, url)
	)`,
	`CREATE TABLE IF NOT EXISTS deliveries (
		key TEXT PRIMARY KEY,
		job_id {int64} NOT NULL,
		received_at {int64} NOT NULL
	)`,
}
