package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/rollout"
)

// Rollout is a stored rollout: the wave state machine's state (rollout.Rollout,
// kept as its versioned JSON) with where it came from. Commit, kind and
// status are also columns, so that the active rollouts are listed without
// decoding every one.
type Rollout struct {
	ID   int64  `json:"id"`
	Repo string `json:"repo"`
	// Branch and Remotes are those of the push that started it (a rollback
	// has the ones of the rollout it replaced, if any): where its commit
	// statuses go.
	Branch  string           `json:"branch,omitempty"`
	Remotes []queue.Remote   `json:"remotes,omitempty"`
	Created time.Time        `json:"created"`
	Updated time.Time        `json:"updated"`
	State   *rollout.Rollout `json:"state"`
}

// origin is the origin column.
type origin struct {
	Branch  string         `json:"branch,omitempty"`
	Remotes []queue.Remote `json:"remotes,omitempty"`
}

// RolloutTx is what a function run by WithRollouts does, inside one
// transaction that holds the lock of one repository's rollouts: on
// PostgreSQL no other instance changes them (or starts one) until it ends.
// Its writes are committed together when the function returns nil, and
// discarded when it returns an error. It is not safe for concurrent use and
// is valid only while the function runs.
type RolloutTx interface {
	// Active returns the repository's active rollouts (progressing or
	// halted), oldest first.
	Active(ctx context.Context) ([]Rollout, error)
	// Latest returns the repository's newest rollout of kind, if any.
	Latest(ctx context.Context, kind rollout.Kind) (Rollout, bool, error)
	// Get returns one of the repository's rollouts (ErrNotFound for an
	// unknown id or another repository's).
	Get(ctx context.Context, id int64) (Rollout, error)
	// Create stores a new rollout of the repository and returns it with
	// its id.
	Create(ctx context.Context, r Rollout) (Rollout, error)
	// Save stores r's state.
	Save(ctx context.Context, r Rollout) error

	// Host, NextSeq and SetDesired are Store's, inside the transaction.
	Host(ctx context.Context, name string) (Host, error)
	NextSeq(ctx context.Context) (uint64, error)
	SetDesired(ctx context.Context, host, path, commit string, seq uint64, manifest []byte) error
	// Append adds an event to the log when the transaction commits.
	Append(typ string, data any) error
}

// lockName is the counters row whose update serialises the changes to a
// repository's rollouts (an updated row stays locked until commit).
func lockName(repo string) string { return "rollout-lock:" + repo }

// WithRollouts runs fn in one transaction holding the lock of repo's
// rollouts, and commits what it did if it returns nil. Two builders
// sharing a PostgreSQL database thus never both advance one rollout: the
// second sees what the first committed. fn must not call the Store (on
// SQLite the transaction holds its only connection); it may call the
// network (a signer), briefly, since the lock is held meanwhile.
func (s *Store) WithRollouts(ctx context.Context, repo string, fn func(tx RolloutTx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("rollouts of %s: %w", repo, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO counters (name, value) VALUES ($1, 1)
		ON CONFLICT (name) DO UPDATE SET value = counters.value + 1`, lockName(repo)); err != nil {
		return fmt.Errorf("lock rollouts of %s: %w", repo, err)
	}
	rt := &rolloutTx{s: s, tx: tx, repo: repo}
	if err := fn(rt); err != nil {
		return err
	}
	if len(rt.events) > 0 {
		if err := s.insertEvents(ctx, tx, rt.events); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("rollouts of %s: %w", repo, err)
	}
	if len(rt.events) > 0 {
		s.wakeWaiters()
	}
	return nil
}

type rolloutTx struct {
	s      *Store
	tx     *sql.Tx
	repo   string
	events []Event
}

var _ RolloutTx = (*rolloutTx)(nil)

const rolloutCols = `id, repo, origin, data, created, updated`

func scanRollout(sc interface{ Scan(...any) error }) (Rollout, error) {
	var r Rollout
	var originJSON, data []byte
	var created, updated int64
	if err := sc.Scan(&r.ID, &r.Repo, &originJSON, &data, &created, &updated); err != nil {
		return Rollout{}, err
	}
	var o origin
	if err := json.Unmarshal(originJSON, &o); err != nil {
		return Rollout{}, fmt.Errorf("rollout %d: origin: %w", r.ID, err)
	}
	st, err := rollout.Load(data)
	if err != nil {
		return Rollout{}, fmt.Errorf("rollout %d: %w", r.ID, err)
	}
	r.Branch, r.Remotes, r.State = o.Branch, o.Remotes, st
	r.Created, r.Updated = fromMS(created), fromMS(updated)
	return r, nil
}

func queryRollouts(ctx context.Context, q querier, query string, args ...any) ([]Rollout, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query rollouts: %w", err)
	}
	defer rows.Close()
	var out []Rollout
	for rows.Next() {
		r, err := scanRollout(rows)
		if err != nil {
			return nil, fmt.Errorf("query rollouts: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query rollouts: %w", err)
	}
	return out, nil
}

func getRollout(ctx context.Context, q querier, id int64) (Rollout, error) {
	r, err := scanRollout(q.QueryRowContext(ctx, `SELECT `+rolloutCols+` FROM rollouts WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Rollout{}, fmt.Errorf("rollout %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Rollout{}, fmt.Errorf("rollout %d: %w", id, err)
	}
	return r, nil
}

func (t *rolloutTx) Active(ctx context.Context) ([]Rollout, error) {
	return queryRollouts(ctx, t.tx, `SELECT `+rolloutCols+` FROM rollouts WHERE repo = $1 AND active = $2 ORDER BY id`, t.repo, true)
}

func (t *rolloutTx) Latest(ctx context.Context, kind rollout.Kind) (Rollout, bool, error) {
	rs, err := queryRollouts(ctx, t.tx, `SELECT `+rolloutCols+` FROM rollouts WHERE repo = $1 AND kind = $2 ORDER BY id DESC LIMIT 1`, t.repo, string(kind))
	if err != nil || len(rs) == 0 {
		return Rollout{}, false, err
	}
	return rs[0], true, nil
}

func (t *rolloutTx) Get(ctx context.Context, id int64) (Rollout, error) {
	r, err := getRollout(ctx, t.tx, id)
	if err != nil {
		return Rollout{}, err
	}
	if r.Repo != t.repo {
		return Rollout{}, fmt.Errorf("rollout %d of %s: %w", id, t.repo, ErrNotFound)
	}
	return r, nil
}

// encode returns the columns of r.
func encodeRollout(r Rollout) (originJSON, data []byte, err error) {
	if r.State == nil {
		return nil, nil, fmt.Errorf("rollout without a state")
	}
	if originJSON, err = json.Marshal(origin{Branch: r.Branch, Remotes: r.Remotes}); err != nil {
		return nil, nil, fmt.Errorf("encode rollout origin: %w", err)
	}
	if data, err = json.Marshal(r.State); err != nil {
		return nil, nil, fmt.Errorf("encode rollout: %w", err)
	}
	return originJSON, data, nil
}

func (t *rolloutTx) Create(ctx context.Context, r Rollout) (Rollout, error) {
	originJSON, data, err := encodeRollout(r)
	if err != nil {
		return Rollout{}, err
	}
	now := t.s.now().UTC().Truncate(time.Millisecond)
	r.Repo, r.Created, r.Updated = t.repo, now, now
	err = t.tx.QueryRowContext(ctx, `INSERT INTO rollouts (repo, commit_id, kind, status, active, origin, data, created, updated)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
		t.repo, r.State.Commit, string(r.State.Kind), string(r.State.Status), r.State.Status.Active(), originJSON, data, ms(now), ms(now)).Scan(&r.ID)
	if err != nil {
		return Rollout{}, fmt.Errorf("create rollout of %s: %w", r.State.Commit, err)
	}
	return r, nil
}

func (t *rolloutTx) Save(ctx context.Context, r Rollout) error {
	originJSON, data, err := encodeRollout(r)
	if err != nil {
		return err
	}
	res, err := t.tx.ExecContext(ctx, `UPDATE rollouts SET status = $1, active = $2, origin = $3, data = $4, updated = $5
		WHERE id = $6 AND repo = $7`,
		string(r.State.Status), r.State.Status.Active(), originJSON, data, ms(t.s.now()), r.ID, t.repo)
	if err != nil {
		return fmt.Errorf("save rollout %d: %w", r.ID, err)
	}
	if n, err := res.RowsAffected(); err == nil && n != 1 {
		return fmt.Errorf("save rollout %d of %s: %w", r.ID, t.repo, ErrNotFound)
	}
	return nil
}

func (t *rolloutTx) Host(ctx context.Context, name string) (Host, error) {
	return host(ctx, t.tx, name)
}

func (t *rolloutTx) NextSeq(ctx context.Context) (uint64, error) { return nextSeq(ctx, t.tx) }

func (t *rolloutTx) SetDesired(ctx context.Context, host, path, commit string, seq uint64, manifest []byte) error {
	return setDesired(ctx, t.tx, host, path, commit, seq, manifest)
}

func (t *rolloutTx) Append(typ string, data any) error {
	body, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", typ, err)
	}
	t.events = append(t.events, Event{Time: t.s.now().UTC().Truncate(time.Millisecond), Type: typ, Data: body})
	return nil
}

// Rollout returns one rollout.
func (s *Store) Rollout(ctx context.Context, id int64) (Rollout, error) {
	return getRollout(ctx, s.db, id)
}

// ActiveRollouts returns the active rollouts (progressing or halted) of
// every repository, oldest first.
func (s *Store) ActiveRollouts(ctx context.Context) ([]Rollout, error) {
	return queryRollouts(ctx, s.db, `SELECT `+rolloutCols+` FROM rollouts WHERE active = $1 ORDER BY id`, true)
}

// Rollouts returns the newest rollouts first, of repo ("" for every
// repository).
func (s *Store) Rollouts(ctx context.Context, repo string, limit int) ([]Rollout, error) {
	if limit <= 0 {
		limit = 50
	}
	if repo == "" {
		return queryRollouts(ctx, s.db, `SELECT `+rolloutCols+` FROM rollouts ORDER BY id DESC LIMIT $1`, limit)
	}
	return queryRollouts(ctx, s.db, `SELECT `+rolloutCols+` FROM rollouts WHERE repo = $1 ORDER BY id DESC LIMIT $2`, repo, limit)
}

// RolloutPaths returns the closures of the active rollouts (a push's new
// closures, a rollback's old ones), sorted: cache retention keeps them.
func (s *Store) RolloutPaths(ctx context.Context) ([]string, error) {
	active, err := s.ActiveRollouts(ctx)
	if err != nil {
		return nil, fmt.Errorf("rollout closures: %w", err)
	}
	seen := map[string]bool{}
	var out []string
	for _, r := range active {
		for _, t := range r.State.Targets {
			if !seen[t.StorePath] {
				seen[t.StorePath] = true
				out = append(out, t.StorePath)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// DeployEvaluations returns the finished evaluations of the deploy branch
// whose commit id starts with prefix (lowercase hex, at least 4 digits),
// newest first.
func (s *Store) DeployEvaluations(ctx context.Context, prefix string) ([]Evaluation, error) {
	if len(prefix) < 4 || strings.Trim(prefix, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("deploy evaluations of %q: a commit id prefix is 4 or more lowercase hex digits", prefix)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+evalCols+` FROM evaluations
		WHERE deploy = $1 AND state IN ($2, $3) AND substr(commit_id, 1, $4) = $5 ORDER BY id DESC LIMIT 100`,
		true, EvalDone, EvalFailed, len(prefix), prefix)
	if err != nil {
		return nil, fmt.Errorf("deploy evaluations of %s: %w", prefix, err)
	}
	defer rows.Close()
	var out []Evaluation
	for rows.Next() {
		e, err := scanEval(rows)
		if err != nil {
			return nil, fmt.Errorf("deploy evaluations of %s: %w", prefix, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
