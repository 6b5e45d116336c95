package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// What a target's closure is diffed against (TargetDiff.Against).
const (
	// DiffCurrent is the closure the host runs: its last report.
	DiffCurrent = "current"
	// DiffPrevious is the host's closure in the previous evaluation of the
	// same branch; for a pull request, in the deploy branch's latest
	// evaluation (what merging would change).
	DiffPrevious = "previous"
)

// TargetDiff is how a target's closure differs from one other closure.
type TargetDiff struct {
	TargetID int64  `json:"target"`
	Against  string `json:"against"` // DiffCurrent or DiffPrevious
	// BasePath is the closure compared with; "" means nothing (the host
	// never reported, or was never built before): every path is new.
	BasePath string `json:"base_path,omitempty"`
	// BaseTarget is the target that built BasePath, 0 when none did here
	// (a closure the host reported).
	BaseTarget int64  `json:"base_target,omitempty"`
	Summary    string `json:"summary,omitempty"`  // the short form, for a table cell
	Headline   string `json:"headline,omitempty"` // the changes that matter most, for a message
	// Error says why there is no diff (the base closure is in neither the
	// store nor the cache, …); Summary, Headline and Data are empty then.
	Error string `json:"error,omitempty"`
	// Data is the whole diff as the pipeline encoded it (opaque here).
	Data    json.RawMessage `json:"data,omitempty"`
	Created time.Time       `json:"created"`
}

// PutTargetDiff records a target's diff against d.Against, replacing the
// one an earlier attempt recorded.
func (s *Store) PutTargetDiff(ctx context.Context, d TargetDiff) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO target_diffs
		(target_id, against, base_path, base_target, summary, headline, error, data, created)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (target_id, against) DO UPDATE SET base_path = excluded.base_path,
			base_target = excluded.base_target, summary = excluded.summary, headline = excluded.headline,
			error = excluded.error, data = excluded.data, created = excluded.created`,
		d.TargetID, d.Against, d.BasePath, d.BaseTarget, d.Summary, d.Headline, d.Error, []byte(d.Data), ms(s.now()))
	if err != nil {
		return fmt.Errorf("put %s diff of target %d: %w", d.Against, d.TargetID, err)
	}
	return nil
}

const diffCols = `target_id, against, base_path, base_target, summary, headline, error, data, created`

func scanDiff(sc interface{ Scan(...any) error }) (TargetDiff, error) {
	var d TargetDiff
	var data []byte
	var created int64
	err := sc.Scan(&d.TargetID, &d.Against, &d.BasePath, &d.BaseTarget, &d.Summary, &d.Headline, &d.Error, &data, &created)
	if len(data) > 0 {
		d.Data = data
	}
	d.Created = fromMS(created)
	return d, err
}

// TargetDiffs returns the diffs recorded for a target, by Against; none
// is an empty list (not computed yet, or the target has no closure).
func (s *Store) TargetDiffs(ctx context.Context, targetID int64) ([]TargetDiff, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+diffCols+` FROM target_diffs WHERE target_id = $1 ORDER BY against`, targetID)
	if err != nil {
		return nil, fmt.Errorf("diffs of target %d: %w", targetID, err)
	}
	defer rows.Close()
	var out []TargetDiff
	for rows.Next() {
		d, err := scanDiff(rows)
		if err != nil {
			return nil, fmt.Errorf("diffs of target %d: %w", targetID, err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DiffSummaries returns the Summary of the diff against against of each
// of targets that has one (a diff that failed has none): the short text a
// hosts-by-commits table shows per cell.
func (s *Store) DiffSummaries(ctx context.Context, targets []int64, against string) (map[int64]string, error) {
	out := make(map[int64]string, len(targets))
	// A bounded number of parameters per query, whatever the table's size.
	const chunk = 500
	for len(targets) > 0 {
		n := min(chunk, len(targets))
		part := targets[:n]
		targets = targets[n:]
		args := make([]any, 0, n+1)
		args = append(args, against)
		marks := make([]string, n)
		for i, id := range part {
			args = append(args, id)
			marks[i] = "$" + strconv.Itoa(i+2)
		}
		rows, err := s.db.QueryContext(ctx, `SELECT target_id, summary FROM target_diffs
			WHERE against = $1 AND error = '' AND target_id IN (`+strings.Join(marks, ", ")+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("diff summaries: %w", err)
		}
		for rows.Next() {
			var id int64
			var summary string
			if err := rows.Scan(&id, &summary); err != nil {
				rows.Close()
				return nil, fmt.Errorf("diff summaries: %w", err)
			}
			out[id] = summary
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("diff summaries: %w", err)
		}
	}
	return out, nil
}

// BuiltQuery selects the evaluations LastBuilt looks in.
type BuiltQuery struct {
	Repo string
	Host string
	// Branch, if set, keeps evaluations of that branch only.
	Branch string
	// DeployOnly keeps evaluations of the deploy branch only.
	DeployOnly bool
	// Before, if set, keeps evaluations with a lower id (started earlier).
	Before int64
}

// LastBuilt returns the host's target with a closure (built or cached) in
// the latest evaluation q selects that has one, with that evaluation; an
// error wrapping ErrNotFound when there is none.
func (s *Store) LastBuilt(ctx context.Context, q BuiltQuery) (Target, Evaluation, error) {
	where := []string{"e.repo = $1", "t.host = $2", "t.state IN ($3, $4)", "t.out_path != ''"}
	args := []any{q.Repo, q.Host, TargetBuilt, TargetCached}
	if q.Branch != "" {
		args = append(args, q.Branch)
		where = append(where, "e.branch = $"+strconv.Itoa(len(args)))
	}
	if q.DeployOnly {
		args = append(args, true)
		where = append(where, "e.deploy = $"+strconv.Itoa(len(args)))
	}
	if q.Before > 0 {
		args = append(args, q.Before)
		where = append(where, "e.id < $"+strconv.Itoa(len(args)))
	}
	cols := "t." + strings.ReplaceAll(targetCols, ", ", ", t.") + ", e." + strings.ReplaceAll(evalCols, ", ", ", e.")
	row := s.db.QueryRowContext(ctx, `SELECT `+cols+` FROM targets t JOIN evaluations e ON e.id = t.eval_id
		WHERE `+strings.Join(where, " AND ")+` ORDER BY e.id DESC LIMIT 1`, args...)
	var t Target
	var e Evaluation
	var started, finished, created, evFinished int64
	err := row.Scan(&t.ID, &t.EvalID, &t.Host, &t.Kind, &t.System, &t.DrvPath, &t.OutPath, &t.State, &t.Reason, &started, &finished,
		&e.ID, &e.JobID, &e.Repo, &e.Branch, &e.Commit, &e.Deploy, &e.State, &e.SourceHash, &e.Error, &created, &evFinished)
	if errors.Is(err, sql.ErrNoRows) {
		return Target{}, Evaluation{}, fmt.Errorf("last build of %s in %s: %w", q.Host, q.Repo, ErrNotFound)
	}
	if err != nil {
		return Target{}, Evaluation{}, fmt.Errorf("last build of %s in %s: %w", q.Host, q.Repo, err)
	}
	t.Started, t.Finished = fromMS(started), fromMS(finished)
	e.Created, e.Finished = fromMS(created), fromMS(evFinished)
	return t, e, nil
}
