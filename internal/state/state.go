package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/homelab-farm/farm/internal/queue/sqlqueue"
)

// ErrNotFound is returned for an unknown evaluation, target or host.
var ErrNotFound = errors.New("not found")

// Evaluation states.
const (
	EvalRunning    = "running"
	EvalDone       = "done"
	EvalFailed     = "failed"
	EvalSuperseded = "superseded"
)

// Target states.
const (
	TargetPending  = "pending"
	TargetBuilding = "building"
	TargetBuilt    = "built"
	TargetCached   = "cached"
	TargetFailed   = "failed"
	TargetSkipped  = "skipped"
)

// Evaluation is one evaluation of one commit.
type Evaluation struct {
	ID         int64     `json:"id"`
	JobID      int64     `json:"job_id"`
	Repo       string    `json:"repo"`
	Branch     string    `json:"branch"`
	Commit     string    `json:"commit"`
	Deploy     bool      `json:"deploy"`
	State      string    `json:"state"`
	SourceHash string    `json:"source_hash,omitempty"`
	Error      string    `json:"error,omitempty"`
	Created    time.Time `json:"created"`
	Finished   time.Time `json:"finished,omitzero"`
}

// Target is one host's closure within an evaluation.
type Target struct {
	ID       int64     `json:"id"`
	EvalID   int64     `json:"eval_id"`
	Host     string    `json:"host"`
	Kind     string    `json:"kind"`
	System   string    `json:"system"`
	DrvPath  string    `json:"drv_path,omitempty"`
	OutPath  string    `json:"out_path,omitempty"`
	State    string    `json:"state"`
	Reason   string    `json:"reason,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
}

// Host is what the farm wants a host to run and what it last reported.
type Host struct {
	Name          string          `json:"name"`
	DesiredPath   string          `json:"desired_path,omitempty"`
	DesiredCommit string          `json:"desired_commit,omitempty"`
	DesiredSeq    uint64          `json:"desired_seq,omitempty"`
	Manifest      json.RawMessage `json:"-"`
	CurrentPath   string          `json:"current_path,omitempty"`
	LastResult    string          `json:"last_result,omitempty"`
	LastReason    string          `json:"last_reason,omitempty"`
	LastSeen      time.Time       `json:"last_seen,omitzero"`
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// Event is one entry of the append-only event log.
type Event struct {
	ID   int64           `json:"id"`
	Time time.Time       `json:"time"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// Interface is what the builder does with its state. *Store implements it
// on SQLite (Open) and on PostgreSQL (OpenPostgres); statetest is the
// contract both keep.
type Interface interface {
	StartEvaluation(ctx context.Context, e Evaluation) (Evaluation, bool, error)
	FinishEvaluation(ctx context.Context, id int64, state, sourceHash, errMsg string) error
	SetSourceHash(ctx context.Context, id int64, hash string) error
	Evaluation(ctx context.Context, id int64) (Evaluation, error)
	EvaluationByJob(ctx context.Context, jobID int64) (Evaluation, error)
	Evaluations(ctx context.Context, limit int) ([]Evaluation, error)
	FindBySource(ctx context.Context, repo, hash string) (Evaluation, error)

	PutTarget(ctx context.Context, t Target) (Target, error)
	SetTargetState(ctx context.Context, id int64, state, reason string) error
	Target(ctx context.Context, id int64) (Target, error)
	Targets(ctx context.Context, evalID int64) ([]Target, error)
	LastBuilt(ctx context.Context, q BuiltQuery) (Target, Evaluation, error)

	PutTargetDiff(ctx context.Context, d TargetDiff) error
	TargetDiffs(ctx context.Context, targetID int64) ([]TargetDiff, error)
	DiffSummaries(ctx context.Context, targets []int64, against string) (map[int64]string, error)

	NextSeq(ctx context.Context) (uint64, error)
	Seq(ctx context.Context) (uint64, error)
	RaiseSeq(ctx context.Context, v uint64) error
	SetDesired(ctx context.Context, host, path, commit string, seq uint64, manifest []byte) error
	Report(ctx context.Context, host, current, result, reason string) error
	Host(ctx context.Context, name string) (Host, error)
	Hosts(ctx context.Context) ([]Host, error)

	WithRollouts(ctx context.Context, repo string, fn func(tx RolloutTx) error) error
	Rollout(ctx context.Context, id int64) (Rollout, error)
	ActiveRollouts(ctx context.Context) ([]Rollout, error)
	Rollouts(ctx context.Context, repo string, limit int) ([]Rollout, error)
	RolloutPaths(ctx context.Context) ([]string, error)
	DeployEvaluations(ctx context.Context, prefix string) ([]Evaluation, error)

	Append(ctx context.Context, typ string, data any) (Event, error)
	AppendAll(ctx context.Context, evs []NewEvent) error
	Changed() <-chan struct{}
	EventsAfter(ctx context.Context, after int64, limit int) ([]Event, error)

	RecordCollection(ctx context.Context, c Collection) (Collection, error)
	CacheHistory(ctx context.Context, since time.Time, limit int) (CacheHistory, error)
	ClaimCollection(ctx context.Context, now, next time.Time) (bool, error)
	NextCollection(ctx context.Context) (time.Time, error)
	PostponeCollection(ctx context.Context, at time.Time) error

	Close() error
}

var _ Interface = (*Store)(nil)

// Store is the builder's state on one SQL database. Safe for concurrent use.
type Store struct {
	db  *sql.DB
	d   dialect
	now func() time.Time

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every appended event

	stop func() // stops the background work of the dialect, if any
}

// dialect is what differs between databases.
type dialect struct {
	// lockEvents, when set, runs first in every transaction that appends
	// events and holds until it commits, so that event ids are assigned in
	// commit order.
	lockEvents func(ctx context.Context, tx *sql.Tx) error
	// notify, when set, runs last in every transaction that appends events
	// and tells other instances on the database.
	notify func(ctx context.Context, tx *sql.Tx) error
}

// schema is expanded with sqlqueue's column types per database.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS evaluations (
		id {id},
		job_id {int64} NOT NULL UNIQUE,
		repo TEXT NOT NULL, branch TEXT NOT NULL, commit_id TEXT NOT NULL,
		deploy {bool} NOT NULL, state TEXT NOT NULL,
		source_hash TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '',
		created {int64} NOT NULL, finished {int64} NOT NULL DEFAULT 0)`,
	`CREATE INDEX IF NOT EXISTS evaluations_source ON evaluations (repo, source_hash, state)`,
	`CREATE TABLE IF NOT EXISTS targets (
		id {id},
		eval_id {int64} NOT NULL, host TEXT NOT NULL, kind TEXT NOT NULL,
		system TEXT NOT NULL, drv_path TEXT NOT NULL, out_path TEXT NOT NULL,
		state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
		started {int64} NOT NULL DEFAULT 0, finished {int64} NOT NULL DEFAULT 0,
		UNIQUE (eval_id, host))`,
	`CREATE TABLE IF NOT EXISTS hosts (
		name TEXT PRIMARY KEY,
		desired_path TEXT NOT NULL DEFAULT '', desired_commit TEXT NOT NULL DEFAULT '',
		desired_seq {int64} NOT NULL DEFAULT 0, manifest {blob},
		current_path TEXT NOT NULL DEFAULT '', last_result TEXT NOT NULL DEFAULT '',
		last_reason TEXT NOT NULL DEFAULT '', last_seen {int64} NOT NULL DEFAULT 0)`,
	`CREATE TABLE IF NOT EXISTS events (
		id {id},
		time {int64} NOT NULL, type TEXT NOT NULL, data {blob} NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value {int64} NOT NULL)`,
	`CREATE INDEX IF NOT EXISTS targets_host ON targets (host, eval_id)`,
	`CREATE TABLE IF NOT EXISTS target_diffs (
		target_id {int64} NOT NULL, against TEXT NOT NULL,
		base_path TEXT NOT NULL DEFAULT '', base_target {int64} NOT NULL DEFAULT 0,
		summary TEXT NOT NULL DEFAULT '', headline TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '',
		data {blob}, created {int64} NOT NULL,
		PRIMARY KEY (target_id, against))`,
	`CREATE TABLE IF NOT EXISTS rollouts (
		id {id},
		repo TEXT NOT NULL, commit_id TEXT NOT NULL, kind TEXT NOT NULL,
		status TEXT NOT NULL, active {bool} NOT NULL,
		origin {blob} NOT NULL, data {blob} NOT NULL,
		created {int64} NOT NULL, updated {int64} NOT NULL)`,
	`CREATE INDEX IF NOT EXISTS rollouts_active ON rollouts (active, repo)`,
	`CREATE INDEX IF NOT EXISTS rollouts_repo ON rollouts (repo, id)`,
	`CREATE TABLE IF NOT EXISTS collections (
		id {id},
		instance TEXT NOT NULL DEFAULT '', started {int64} NOT NULL, duration_ms {int64} NOT NULL,
		freed_objects {int64} NOT NULL, freed_bytes {int64} NOT NULL, kept_paths {int64} NOT NULL,
		cache_objects {int64} NOT NULL, cache_bytes {int64} NOT NULL,
		error TEXT NOT NULL DEFAULT '', hosts {blob})`,
	`CREATE INDEX IF NOT EXISTS collections_started ON collections (started)`,
}

// newStore creates the schema on db and returns a store on it.
func newStore(ctx context.Context, db *sql.DB, types sqlqueue.Types, d dialect) (*Store, error) {
	for _, stmt := range types.Expand(schema) {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("create state schema: %w", err)
		}
	}
	return &Store{db: db, d: d, now: time.Now, changed: make(chan struct{}), stop: func() {}}, nil
}

// Close stops the store's background work and closes the database.
func (s *Store) Close() error {
	s.stop()
	return s.db.Close()
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// StartEvaluation records the evaluation of a queue job, or returns the one
// already recorded for it (a job retried after a crash continues its
// evaluation rather than starting a second one).
func (s *Store) StartEvaluation(ctx context.Context, e Evaluation) (Evaluation, bool, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO evaluations (job_id, repo, branch, commit_id, deploy, state, created)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (job_id) DO NOTHING`,
		e.JobID, e.Repo, e.Branch, e.Commit, e.Deploy, EvalRunning, ms(s.now()))
	if err != nil {
		return Evaluation{}, false, fmt.Errorf("start evaluation: %w", err)
	}
	n, _ := res.RowsAffected()
	got, err := s.evaluationBy(ctx, "job_id", e.JobID)
	return got, n == 1, err
}

// FinishEvaluation sets an evaluation's final state.
func (s *Store) FinishEvaluation(ctx context.Context, id int64, state, sourceHash, errMsg string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE evaluations SET state = $1, source_hash = $2, error = $3, finished = $4 WHERE id = $5`,
		state, sourceHash, errMsg, ms(s.now()), id)
	if err != nil {
		return fmt.Errorf("finish evaluation %d: %w", id, err)
	}
	return nil
}

// SetSourceHash records the hash of the flake's source an evaluation saw.
func (s *Store) SetSourceHash(ctx context.Context, id int64, hash string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE evaluations SET source_hash = $1 WHERE id = $2`, hash, id); err != nil {
		return fmt.Errorf("set source hash of evaluation %d: %w", id, err)
	}
	return nil
}

const evalCols = `id, job_id, repo, branch, commit_id, deploy, state, source_hash, error, created, finished`

func scanEval(sc interface{ Scan(...any) error }) (Evaluation, error) {
	var e Evaluation
	var created, finished int64
	err := sc.Scan(&e.ID, &e.JobID, &e.Repo, &e.Branch, &e.Commit, &e.Deploy, &e.State, &e.SourceHash, &e.Error, &created, &finished)
	e.Created, e.Finished = fromMS(created), fromMS(finished)
	return e, err
}

func (s *Store) evaluationBy(ctx context.Context, col string, v any) (Evaluation, error) {
	e, err := scanEval(s.db.QueryRowContext(ctx, `SELECT `+evalCols+` FROM evaluations WHERE `+col+` = $1`, v))
	if errors.Is(err, sql.ErrNoRows) {
		return Evaluation{}, fmt.Errorf("evaluation %s=%v: %w", col, v, ErrNotFound)
	}
	return e, err
}

// Evaluation returns one evaluation.
func (s *Store) Evaluation(ctx context.Context, id int64) (Evaluation, error) {
	return s.evaluationBy(ctx, "id", id)
}

// EvaluationByJob returns the evaluation of a queue job.
func (s *Store) EvaluationByJob(ctx context.Context, jobID int64) (Evaluation, error) {
	return s.evaluationBy(ctx, "job_id", jobID)
}

// Evaluations returns the newest evaluations first.
func (s *Store) Evaluations(ctx context.Context, limit int) ([]Evaluation, error) {
	if limit <= 0 {
		limit = 50
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+evalCols+` FROM evaluations ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Evaluation
	for rows.Next() {
		e, err := scanEval(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// FindBySource returns the latest finished evaluation of repo whose flake
// source hashed to hash, for reuse.
func (s *Store) FindBySource(ctx context.Context, repo, hash string) (Evaluation, error) {
	e, err := scanEval(s.db.QueryRowContext(ctx, `SELECT `+evalCols+` FROM evaluations
		WHERE repo = $1 AND source_hash = $2 AND state = $3 ORDER BY id DESC LIMIT 1`, repo, hash, EvalDone))
	if errors.Is(err, sql.ErrNoRows) {
		return Evaluation{}, ErrNotFound
	}
	return e, err
}

// PutTarget records a host's target in an evaluation (replacing what a
// previous attempt recorded) and returns it with its id.
func (s *Store) PutTarget(ctx context.Context, t Target) (Target, error) {
	err := s.db.QueryRowContext(ctx, `INSERT INTO targets (eval_id, host, kind, system, drv_path, out_path, state, reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (eval_id, host) DO UPDATE SET kind = excluded.kind, system = excluded.system,
			drv_path = excluded.drv_path, out_path = excluded.out_path, state = excluded.state, reason = excluded.reason
		RETURNING id`,
		t.EvalID, t.Host, t.Kind, t.System, t.DrvPath, t.OutPath, t.State, t.Reason).Scan(&t.ID)
	if err != nil {
		return Target{}, fmt.Errorf("put target %s: %w", t.Host, err)
	}
	return t, nil
}

// SetTargetState moves a target to state with a reason, stamping its start
// (building) or end (any final state).
func (s *Store) SetTargetState(ctx context.Context, id int64, state, reason string) error {
	now := ms(s.now())
	var err error
	if state == TargetBuilding {
		_, err = s.db.ExecContext(ctx, `UPDATE targets SET state = $1, reason = $2, started = $3, finished = 0 WHERE id = $4`, state, reason, now, id)
	} else {
		_, err = s.db.ExecContext(ctx, `UPDATE targets SET state = $1, reason = $2, finished = $3 WHERE id = $4`, state, reason, now, id)
	}
	if err != nil {
		return fmt.Errorf("set target %d %s: %w", id, state, err)
	}
	return nil
}

const targetCols = `id, eval_id, host, kind, system, drv_path, out_path, state, reason, started, finished`

func scanTarget(sc interface{ Scan(...any) error }) (Target, error) {
	var t Target
	var started, finished int64
	err := sc.Scan(&t.ID, &t.EvalID, &t.Host, &t.Kind, &t.System, &t.DrvPath, &t.OutPath, &t.State, &t.Reason, &started, &finished)
	t.Started, t.Finished = fromMS(started), fromMS(finished)
	return t, err
}

// Target returns one target.
func (s *Store) Target(ctx context.Context, id int64) (Target, error) {
	t, err := scanTarget(s.db.QueryRowContext(ctx, `SELECT `+targetCols+` FROM targets WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Target{}, fmt.Errorf("target %d: %w", id, ErrNotFound)
	}
	return t, err
}

// Targets returns the targets of an evaluation by host name.
func (s *Store) Targets(ctx context.Context, evalID int64) ([]Target, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+targetCols+` FROM targets WHERE eval_id = $1 ORDER BY host`, evalID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Target
	for rows.Next() {
		t, err := scanTarget(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// NextSeq returns a new deploy sequence number, higher than every one
// handed out before.
func (s *Store) NextSeq(ctx context.Context) (uint64, error) {
	return nextSeq(ctx, s.db)
}

// querier is what a *sql.DB and a *sql.Tx both do.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func nextSeq(ctx context.Context, q querier) (uint64, error) {
	var v uint64
	err := q.QueryRowContext(ctx, `INSERT INTO counters (name, value) VALUES ('deploy_seq', 1)
		ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("next deploy seq: %w", err)
	}
	return v, nil
}

// Seq returns the highest deploy sequence number handed out (0 for none).
func (s *Store) Seq(ctx context.Context) (uint64, error) {
	var v uint64
	err := s.db.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'deploy_seq'`).Scan(&v)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("deploy seq: %w", err)
	}
	return v, nil
}

// RaiseSeq makes every later NextSeq higher than v (it never lowers the
// counter), for a farm that moves its state to another database while
// agents remember the sequence numbers they applied.
func (s *Store) RaiseSeq(ctx context.Context, v uint64) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO counters (name, value) VALUES ('deploy_seq', $1)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value WHERE counters.value < excluded.value`, v)
	if err != nil {
		return fmt.Errorf("raise deploy seq to %d: %w", v, err)
	}
	return nil
}

// SetDesired records the closure a host should run, with its signed
// manifest. It refuses to go back to a lower seq.
func (s *Store) SetDesired(ctx context.Context, host, path, commit string, seq uint64, manifest []byte) error {
	return setDesired(ctx, s.db, host, path, commit, seq, manifest)
}

func setDesired(ctx context.Context, q querier, host, path, commit string, seq uint64, manifest []byte) error {
	_, err := q.ExecContext(ctx, `INSERT INTO hosts (name, desired_path, desired_commit, desired_seq, manifest)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (name) DO UPDATE SET desired_path = excluded.desired_path, desired_commit = excluded.desired_commit,
			desired_seq = excluded.desired_seq, manifest = excluded.manifest
		WHERE excluded.desired_seq > hosts.desired_seq`, host, path, commit, seq, manifest)
	if err != nil {
		return fmt.Errorf("set desired closure of %s: %w", host, err)
	}
	return nil
}

// Report records what a host's agent said: the closure it runs and how its
// last update went.
func (s *Store) Report(ctx context.Context, host, current, result, reason string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO hosts (name, current_path, last_result, last_reason, last_seen)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (name) DO UPDATE SET current_path = excluded.current_path, last_result = excluded.last_result,
			last_reason = excluded.last_reason, last_seen = excluded.last_seen`,
		host, current, result, reason, ms(s.now()))
	if err != nil {
		return fmt.Errorf("report of %s: %w", host, err)
	}
	return nil
}

const hostCols = `name, desired_path, desired_commit, desired_seq, manifest, current_path, last_result, last_reason, last_seen`

func scanHost(sc interface{ Scan(...any) error }) (Host, error) {
	var h Host
	var seen int64
	var manifest []byte
	err := sc.Scan(&h.Name, &h.DesiredPath, &h.DesiredCommit, &h.DesiredSeq, &manifest, &h.CurrentPath, &h.LastResult, &h.LastReason, &seen)
	h.Manifest, h.LastSeen = manifest, fromMS(seen)
	return h, err
}

// Host returns one host.
func (s *Store) Host(ctx context.Context, name string) (Host, error) {
	return host(ctx, s.db, name)
}

func host(ctx context.Context, q querier, name string) (Host, error) {
	h, err := scanHost(q.QueryRowContext(ctx, `SELECT `+hostCols+` FROM hosts WHERE name = $1`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Host{}, fmt.Errorf("host %s: %w", name, ErrNotFound)
	}
	return h, err
}

// Hosts returns every known host by name.
func (s *Store) Hosts(ctx context.Context) ([]Host, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+hostCols+` FROM hosts ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Host
	for rows.Next() {
		h, err := scanHost(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// Append adds an event to the log and wakes everyone waiting for one.
func (s *Store) Append(ctx context.Context, typ string, data any) (Event, error) {
	evs, err := s.appendAll(ctx, []NewEvent{{Type: typ, Data: data}})
	if err != nil {
		return Event{}, err
	}
	return evs[0], nil
}

// NewEvent is an event to append with AppendAll.
type NewEvent struct {
	Type string
	Data any
}

// AppendAll adds events to the log in one transaction (one disk sync), in
// order, and wakes everyone waiting for one.
func (s *Store) AppendAll(ctx context.Context, evs []NewEvent) error {
	if len(evs) == 0 {
		return nil
	}
	_, err := s.appendAll(ctx, evs)
	return err
}

// appendAll appends evs in one transaction and returns them with their ids.
func (s *Store) appendAll(ctx context.Context, evs []NewEvent) ([]Event, error) {
	out := make([]Event, len(evs))
	now := s.now().UTC().Truncate(time.Millisecond)
	for i, ev := range evs {
		body, err := json.Marshal(ev.Data)
		if err != nil {
			return nil, fmt.Errorf("encode %s event: %w", ev.Type, err)
		}
		out[i] = Event{Time: now, Type: ev.Type, Data: body}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("append events: %w", err)
	}
	defer tx.Rollback()
	if err := s.insertEvents(ctx, tx, out); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("append events: %w", err)
	}
	s.wakeWaiters()
	return out, nil
}

// insertEvents inserts evs in tx, setting their ids: it takes the log's
// lock (held until tx ends) and, last, notifies other instances. The
// caller commits and then wakes the waiters.
func (s *Store) insertEvents(ctx context.Context, tx *sql.Tx, evs []Event) error {
	if s.d.lockEvents != nil {
		if err := s.d.lockEvents(ctx, tx); err != nil {
			return fmt.Errorf("append events: lock the log: %w", err)
		}
	}
	for i := range evs {
		ev := &evs[i]
		err := tx.QueryRowContext(ctx, `INSERT INTO events (time, type, data) VALUES ($1, $2, $3) RETURNING id`,
			ms(ev.Time), ev.Type, []byte(ev.Data)).Scan(&ev.ID)
		if err != nil {
			return fmt.Errorf("append %s event: %w", ev.Type, err)
		}
	}
	if s.d.notify != nil {
		if err := s.d.notify(ctx, tx); err != nil {
			return fmt.Errorf("append events: notify: %w", err)
		}
	}
	return nil
}

// wakeWaiters closes the channel Changed handed out and makes a new one.
func (s *Store) wakeWaiters() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Changed returns a channel closed at the next append: on this Store, or
// (PostgreSQL) on any instance on the same database. Take it before
// reading the log, so that no append is missed.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// EventsAfter returns up to limit events with ids above after, oldest first.
func (s *Store) EventsAfter(ctx context.Context, after int64, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = 500
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, time, type, data FROM events WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var ev Event
		var t int64
		if err := rows.Scan(&ev.ID, &t, &ev.Type, &ev.Data); err != nil {
			return nil, err
		}
		ev.Time = fromMS(t)
		out = append(out, ev)
	}
	return out, rows.Err()
}
