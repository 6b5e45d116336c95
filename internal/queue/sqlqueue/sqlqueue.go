package sqlqueue

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/homelab-farm/farm/internal/queue"
)

// Dialect is what differs between databases.
type Dialect struct {
	// Types are the column types that Schema is expanded with.
	Types Types
	// ClaimLock is appended to the SELECT that picks a job in Claim, e.g.
	// "FOR UPDATE SKIP LOCKED". Empty where the transaction already holds
	// the only write lock (SQLite).
	ClaimLock string
	// LockBranch, when set, runs first in an Enqueue transaction that
	// supersedes, so that two enqueues on one branch serialise.
	LockBranch func(ctx context.Context, tx *sql.Tx, repo, branch string) error
	// GroupCommit makes concurrent Enqueue calls share transactions: one
	// goroutine commits whatever has arrived while the previous commit was
	// syncing. Worth it where a commit costs an fsync and transactions
	// serialise anyway (SQLite).
	GroupCommit bool
	// CacheStatements keeps Enqueue's statements prepared on the write
	// database. Worth it where the driver does not cache them itself
	// (modernc.org/sqlite parses every statement anew) and the write
	// database has one connection.
	CacheStatements bool
}

// Queue is a queue.Queue on a database/sql database.
type Queue struct {
	w     *sql.DB // writes (and reads inside write transactions)
	r     *sql.DB // reads outside transactions
	d     Dialect
	opts  queue.Options
	batch *batcher // nil without GroupCommit

	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt
}

// sqlEnqueue are the statements of Enqueue, prepared up front when the
// dialect caches statements.
var sqlEnqueue = []string{
	`INSERT INTO deliveries (key, job_id, received_at) VALUES ($1, 0, $2) ON CONFLICT (key) DO NOTHING`,
	`SELECT job_id FROM deliveries WHERE key = $1`,
	`SELECT id, deploy FROM jobs WHERE key = $1`,
	`UPDATE jobs SET deploy = $1, branch = $2, updated_at = $3 WHERE id = $4 AND state <> $5`,
	`INSERT INTO job_remotes (job_id, forge, url, full_name) VALUES ($1, $2, $3, $4) ON CONFLICT (job_id, forge, url) DO NOTHING`,
	`UPDATE deliveries SET job_id = $1 WHERE key = $2`,
	`SELECT id FROM jobs WHERE kind = $1 AND repo = $2 AND branch = $3 AND before_commit = $4 ORDER BY id DESC LIMIT 1`,
	`INSERT INTO jobs
		(kind, key, repo, branch, commit_id, before_commit, deploy, state, attempts, max_attempts,
		 run_after, worker, lease_until, token, last_error, payload, superseded_by, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, '', 0, '', '', $11, $12, $10, $10)
		ON CONFLICT (key) DO NOTHING RETURNING id`,
	`SELECT id FROM jobs WHERE key = $1`,
	`UPDATE jobs SET state = $1, superseded_by = $2, updated_at = $3
		WHERE kind = $4 AND repo = $5 AND branch = $6 AND state = 'queued' AND id < $2 RETURNING id`,
}

// prepared returns query's statement bound to tx when it was prepared at
// New, else nil.
func (q *Queue) prepared(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if !q.d.CacheStatements {
		return nil, nil
	}
	q.stmtMu.Lock()
	st, ok := q.stmts[query]
	q.stmtMu.Unlock()
	if !ok {
		return nil, nil
	}
	return tx.StmtContext(ctx, st), nil
}

func (q *Queue) exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	st, err := q.prepared(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return tx.ExecContext(ctx, query, args...)
	}
	return st.ExecContext(ctx, args...)
}

func (q *Queue) query(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	st, err := q.prepared(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return tx.QueryContext(ctx, query, args...)
	}
	return st.QueryContext(ctx, args...)
}

// rowScanner is *sql.Row, or a preparation error waiting for Scan.
type rowScanner struct {
	row *sql.Row
	err error
}

func (r rowScanner) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.row.Scan(dest...)
}

func (q *Queue) queryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) rowScanner {
	st, err := q.prepared(ctx, tx, query)
	if err != nil {
		return rowScanner{err: err}
	}
	if st == nil {
		return rowScanner{row: tx.QueryRowContext(ctx, query, args...)}
	}
	return rowScanner{row: st.QueryRowContext(ctx, args...)}
}

var _ queue.Queue = (*Queue)(nil)

// New creates the schema and returns a queue on it. write takes every
// transaction; read serves Get and List (it may be the same *sql.DB).
// The Queue does not close the databases unless Close is called.
func New(ctx context.Context, write, read *sql.DB, d Dialect, opts queue.Options) (*Queue, error) {
	for _, stmt := range d.Types.Expand(Schema) {
		if _, err := write.ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("create queue schema: %w", err)
		}
	}
	q := &Queue{w: write, r: read, d: d, opts: opts.WithDefaults()}
	if d.CacheStatements {
		q.stmts = map[string]*sql.Stmt{}
		for _, query := range sqlEnqueue {
			st, err := write.PrepareContext(ctx, query)
			if err != nil {
				q.Close()
				return nil, fmt.Errorf("prepare %q: %w", query, err)
			}
			q.stmts[query] = st
		}
	}
	if d.GroupCommit {
		q.batch = newBatcher(q)
	}
	return q, nil
}

// Close stops group commits and closes both databases.
func (q *Queue) Close() error {
	if q.batch != nil {
		q.batch.close()
	}
	q.stmtMu.Lock()
	for _, st := range q.stmts {
		st.Close()
	}
	q.stmts = nil
	q.stmtMu.Unlock()
	err := q.w.Close()
	if q.r != q.w {
		err = errors.Join(err, q.r.Close())
	}
	return err
}

func (q *Queue) now() int64 { return q.opts.Now().UnixMicro() }

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (q *Queue) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := q.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Enqueue implements queue.Queue.
func (q *Queue) Enqueue(ctx context.Context, req queue.EnqueueRequest) (queue.EnqueueResult, error) {
	if req.Kind == "" || req.Key == "" {
		return queue.EnqueueResult{}, errors.New("enqueue: kind and key are required")
	}
	if q.batch != nil {
		return q.batch.enqueue(ctx, req)
	}
	var res queue.EnqueueResult
	err := q.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = q.enqueueTx(ctx, tx, req)
		return err
	})
	if err != nil {
		return queue.EnqueueResult{}, fmt.Errorf("enqueue %s: %w", req.Key, err)
	}
	return res, nil
}

// enqueueTx does one Enqueue inside tx.
func (q *Queue) enqueueTx(ctx context.Context, tx *sql.Tx, req queue.EnqueueRequest) (queue.EnqueueResult, error) {
	var res queue.EnqueueResult
	maxAttempts := req.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = q.opts.MaxAttempts
	}
	now := q.now()
	if req.Branch != "" && q.d.LockBranch != nil {
		if err := q.d.LockBranch(ctx, tx, req.Repo, req.Branch); err != nil {
			return res, fmt.Errorf("lock branch: %w", err)
		}
	}
	if req.DeliveryKey != "" {
		// Claim the delivery first: a concurrent duplicate waits on
		// this row and then sees the replay.
		r, err := q.exec(ctx, tx,
			sqlEnqueue[0],
			req.DeliveryKey, now)
		if err != nil {
			return res, fmt.Errorf("record delivery: %w", err)
		}
		if n, _ := r.RowsAffected(); n == 0 {
			res.Replay = true
			err := q.queryRow(ctx, tx, sqlEnqueue[1], req.DeliveryKey).Scan(&res.JobID)
			if err != nil {
				return res, fmt.Errorf("read delivery: %w", err)
			}
			return res, nil
		}
	}
	var deploy bool
	err := q.queryRow(ctx, tx, sqlEnqueue[2], req.Key).Scan(&res.JobID, &deploy)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if err := q.insertJob(ctx, tx, req, maxAttempts, now, &res); err != nil {
			return res, err
		}
	case err != nil:
		return res, fmt.Errorf("find job: %w", err)
	case req.Deploy && !deploy:
		// Known as build-only work (a pull request), now pushed to the
		// deploy branch: it deploys after all.
		if _, err := q.exec(ctx, tx, sqlEnqueue[3],
			true, req.Branch, now, res.JobID, string(queue.Superseded)); err != nil {
			return res, fmt.Errorf("mark deployable: %w", err)
		}
	}
	if _, err := q.exec(ctx, tx,
		sqlEnqueue[4],
		res.JobID, req.Remote.Forge, req.Remote.URL, req.Remote.FullName); err != nil {
		return res, fmt.Errorf("record remote: %w", err)
	}
	if req.DeliveryKey != "" {
		if _, err := q.exec(ctx, tx, sqlEnqueue[5], res.JobID, req.DeliveryKey); err != nil {
			return res, fmt.Errorf("record delivery: %w", err)
		}
	}
	return res, nil
}

func (q *Queue) insertJob(ctx context.Context, tx *sql.Tx, req queue.EnqueueRequest, maxAttempts int, now int64, res *queue.EnqueueResult) error {
	state := queue.Queued
	deploy := req.Deploy
	var newerID int64
	if req.Branch != "" {
		// A job on this branch whose push started from our commit is newer:
		// we arrived late.
		err := q.queryRow(ctx, tx,
			sqlEnqueue[6],
			req.Kind, req.Repo, req.Branch, req.Commit).Scan(&newerID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("find newer job: %w", err)
		default:
			res.Late = true
			state = queue.Superseded
			deploy = false
		}
	}
	err := q.queryRow(ctx, tx, sqlEnqueue[7],
		req.Kind, req.Key, req.Repo, req.Branch, req.Commit, req.Before, deploy, string(state), maxAttempts,
		now, req.Payload, newerID).Scan(&res.JobID)
	if errors.Is(err, sql.ErrNoRows) {
		// A concurrent enqueue of the same key committed first.
		res.Late = false
		if err := q.queryRow(ctx, tx, sqlEnqueue[8], req.Key).Scan(&res.JobID); err != nil {
			return fmt.Errorf("find job: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("insert job: %w", err)
	}
	res.Created = true
	if !req.Supersede || res.Late || req.Branch == "" {
		return nil
	}
	rows, err := q.query(ctx, tx, sqlEnqueue[9],
		string(queue.Superseded), res.JobID, now, req.Kind, req.Repo, req.Branch)
	if err != nil {
		return fmt.Errorf("supersede: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("supersede: %w", err)
		}
		res.Superseded = append(res.Superseded, id)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("supersede: %w", err)
	}
	return nil
}

// Claim implements queue.Queue.
func (q *Queue) Claim(ctx context.Context, req queue.ClaimRequest) (queue.Job, error) {
	if req.Lease <= 0 {
		return queue.Job{}, errors.New("claim: lease must be positive")
	}
	var id int64
	err := q.inTx(ctx, func(tx *sql.Tx) error {
		now := q.now()
		// A job whose worker died during its last allowed attempt is dead.
		// The literal "state IN ('queued', 'running')" lets both databases
		// use the partial index of live jobs instead of the whole history.
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = $1, token = '', updated_at = $2,
			last_error = 'lease expired on the last attempt'
			WHERE state IN ('queued', 'running') AND state = $3 AND lease_until < $2 AND attempts >= max_attempts`,
			string(queue.Dead), now, string(queue.Running)); err != nil {
			return fmt.Errorf("dead-letter expired: %w", err)
		}
		args := []any{string(queue.Queued), now, string(queue.Running)}
		kindFilter := ""
		if len(req.Kinds) > 0 {
			ph := make([]string, len(req.Kinds))
			for i, k := range req.Kinds {
				args = append(args, k)
				ph[i] = fmt.Sprintf("$%d", len(args))
			}
			kindFilter = " AND kind IN (" + strings.Join(ph, ", ") + ")"
		}
		var prev string
		err := tx.QueryRowContext(ctx, `SELECT id, state FROM jobs
			WHERE state IN ('queued', 'running')
			AND ((state = $1 AND run_after <= $2) OR (state = $3 AND lease_until < $2))`+kindFilter+`
			ORDER BY id LIMIT 1 `+q.d.ClaimLock, args...).Scan(&id, &prev)
		if errors.Is(err, sql.ErrNoRows) {
			id = 0 // commit the dead-lettering above
			return nil
		}
		if err != nil {
			return fmt.Errorf("pick job: %w", err)
		}
		lastErr := ""
		if prev == string(queue.Running) {
			lastErr = "lease expired"
		}
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET state = $1, attempts = attempts + 1, worker = $2,
			token = $3, lease_until = $4, updated_at = $5,
			last_error = CASE WHEN $6 = '' THEN last_error ELSE $6 END
			WHERE id = $7`,
			string(queue.Running), req.Worker, newToken(), now+req.Lease.Microseconds(), now, lastErr, id)
		if err != nil {
			return fmt.Errorf("take job: %w", err)
		}
		return nil
	})
	if err != nil {
		return queue.Job{}, fmt.Errorf("claim: %w", err)
	}
	if id == 0 {
		return queue.Job{}, queue.ErrEmpty
	}
	job, err := q.get(ctx, q.w, id)
	if err != nil {
		return queue.Job{}, fmt.Errorf("claim: %w", err)
	}
	return job, nil
}

// Heartbeat implements queue.Queue.
func (q *Queue) Heartbeat(ctx context.Context, id int64, token string, lease time.Duration) error {
	now := q.now()
	r, err := q.w.ExecContext(ctx, `UPDATE jobs SET lease_until = $1, updated_at = $2 WHERE id = $3 AND token = $4 AND state = $5`,
		now+lease.Microseconds(), now, id, token, string(queue.Running))
	if err != nil {
		return fmt.Errorf("heartbeat job %d: %w", id, err)
	}
	return leaseHeld(r, id)
}

func leaseHeld(r sql.Result, id int64) error {
	n, err := r.RowsAffected()
	if err != nil {
		return fmt.Errorf("job %d: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("job %d: %w", id, queue.ErrLeaseLost)
	}
	return nil
}

// Complete implements queue.Queue.
func (q *Queue) Complete(ctx context.Context, id int64, token string, result []byte) error {
	r, err := q.w.ExecContext(ctx, `UPDATE jobs SET state = $1, token = '', lease_until = 0, result = $2, updated_at = $3
		WHERE id = $4 AND token = $5 AND state = $6`,
		string(queue.Done), result, q.now(), id, token, string(queue.Running))
	if err != nil {
		return fmt.Errorf("complete job %d: %w", id, err)
	}
	return leaseHeld(r, id)
}

// Release implements queue.Queue.
func (q *Queue) Release(ctx context.Context, id int64, token string) error {
	now := q.now()
	r, err := q.w.ExecContext(ctx, `UPDATE jobs SET state = $1, token = '', lease_until = 0, run_after = $2,
		attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = $2
		WHERE id = $3 AND token = $4 AND state = $5`,
		string(queue.Queued), now, id, token, string(queue.Running))
	if err != nil {
		return fmt.Errorf("release job %d: %w", id, err)
	}
	return leaseHeld(r, id)
}

// PruneDeliveries implements queue.Queue.
func (q *Queue) PruneDeliveries(ctx context.Context, before time.Time) (int64, error) {
	r, err := q.w.ExecContext(ctx, `DELETE FROM deliveries WHERE received_at < $1`, before.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("prune deliveries: %w", err)
	}
	return r.RowsAffected()
}

// Fail implements queue.Queue.
func (q *Queue) Fail(ctx context.Context, id int64, token string, reason string) (queue.FailResult, error) {
	var res queue.FailResult
	err := q.inTx(ctx, func(tx *sql.Tx) error {
		var attempts, maxAttempts int
		err := tx.QueryRowContext(ctx, `SELECT attempts, max_attempts FROM jobs WHERE id = $1 AND token = $2 AND state = $3`,
			id, token, string(queue.Running)).Scan(&attempts, &maxAttempts)
		if errors.Is(err, sql.ErrNoRows) {
			return queue.ErrLeaseLost
		}
		if err != nil {
			return err
		}
		now := q.opts.Now()
		res = queue.FailResult{State: queue.Dead}
		if attempts < maxAttempts {
			res = queue.FailResult{State: queue.Queued, RunAfter: now.Add(q.opts.Backoff(attempts)).UTC()}
		}
		runAfter := now.UnixMicro()
		if !res.RunAfter.IsZero() {
			runAfter = res.RunAfter.UnixMicro()
		}
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET state = $1, token = '', lease_until = 0, run_after = $2,
			last_error = $3, updated_at = $4 WHERE id = $5`,
			string(res.State), runAfter, reason, now.UnixMicro(), id)
		return err
	})
	if err != nil {
		return queue.FailResult{}, fmt.Errorf("fail job %d: %w", id, err)
	}
	return res, nil
}

const jobColumns = `id, kind, key, repo, branch, commit_id, before_commit, deploy, state, attempts, max_attempts,
	run_after, worker, lease_until, token, last_error, result, payload, superseded_by, created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanJob(s scanner) (queue.Job, error) {
	var j queue.Job
	var state string
	var runAfter, leaseUntil, created, updated int64
	err := s.Scan(&j.ID, &j.Kind, &j.Key, &j.Repo, &j.Branch, &j.Commit, &j.Before, &j.Deploy, &state,
		&j.Attempts, &j.MaxAttempts, &runAfter, &j.Worker, &leaseUntil, &j.Token, &j.LastError,
		&j.Result, &j.Payload, &j.SupersededBy, &created, &updated)
	if err != nil {
		return queue.Job{}, err
	}
	j.State = queue.State(state)
	j.RunAfter, j.LeaseUntil = fromMicros(runAfter), fromMicros(leaseUntil)
	j.CreatedAt, j.UpdatedAt = fromMicros(created), fromMicros(updated)
	return j, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (q *Queue) get(ctx context.Context, db querier, id int64) (queue.Job, error) {
	j, err := scanJob(db.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return queue.Job{}, fmt.Errorf("job %d: %w", id, queue.ErrNotFound)
	}
	if err != nil {
		return queue.Job{}, fmt.Errorf("get job %d: %w", id, err)
	}
	jobs := []queue.Job{j}
	if err := q.loadRemotes(ctx, db, jobs); err != nil {
		return queue.Job{}, err
	}
	return jobs[0], nil
}

// Get implements queue.Queue.
func (q *Queue) Get(ctx context.Context, id int64) (queue.Job, error) {
	j, err := q.get(ctx, q.r, id)
	j.Token = ""
	return j, err
}

// List implements queue.Queue.
func (q *Queue) List(ctx context.Context, opts queue.ListOptions) ([]queue.Job, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if opts.Kind != "" {
		where = append(where, "kind = "+arg(opts.Kind))
	}
	if opts.Repo != "" {
		where = append(where, "repo = "+arg(opts.Repo))
	}
	if len(opts.States) > 0 {
		live := true
		for _, st := range opts.States {
			live = live && (st == queue.Queued || st == queue.Running)
		}
		if live { // the partial index of live jobs, not the history
			where = append(where, "state IN ('queued', 'running')")
		}
		ph := make([]string, len(opts.States))
		for i, s := range opts.States {
			ph[i] = arg(string(s))
		}
		where = append(where, "state IN ("+strings.Join(ph, ", ")+")")
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = 100
	}
	query := `SELECT ` + jobColumns + ` FROM jobs`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id DESC LIMIT " + arg(limit)
	rows, err := q.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	defer rows.Close()
	jobs := []queue.Job{}
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		j.Token = ""
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	if err := q.loadRemotes(ctx, q.r, jobs); err != nil {
		return nil, err
	}
	return jobs, nil
}

func (q *Queue) loadRemotes(ctx context.Context, db querier, jobs []queue.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	idx := make(map[int64]int, len(jobs))
	ph := make([]string, len(jobs))
	args := make([]any, len(jobs))
	for i, j := range jobs {
		idx[j.ID] = i
		ph[i] = fmt.Sprintf("$%d", i+1)
		args[i] = j.ID
		jobs[i].Remotes = []queue.Remote{}
	}
	rows, err := db.QueryContext(ctx, `SELECT job_id, forge, url, full_name FROM job_remotes WHERE job_id IN (`+
		strings.Join(ph, ", ")+`) ORDER BY job_id, forge, url`, args...)
	if err != nil {
		return fmt.Errorf("load remotes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var r queue.Remote
		if err := rows.Scan(&id, &r.Forge, &r.URL, &r.FullName); err != nil {
			return fmt.Errorf("load remotes: %w", err)
		}
		i := idx[id]
		jobs[i].Remotes = append(jobs[i].Remotes, r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load remotes: %w", err)
	}
	return nil
}
