package state

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// desiredEvent is the type of the event the pipeline appends whenever a
// host's desired closure changes (pipeline.EventDesiredChanged); the event
// log is the history of deployed manifests.
const desiredEvent = "host.desired"

// The queries below serve cache retention (gc.RootSource). They only read.

// DeployedPaths returns, for every host, the distinct store paths of its
// last n deployed manifests, newest first: the desired closure, then those
// of earlier host.desired events.
func (s *Store) DeployedPaths(ctx context.Context, n int) (map[string][]string, error) {
	out := make(map[string][]string)
	add := func(host, path string) {
		paths := out[host]
		if path == "" || len(paths) >= n {
			return
		}
		for _, p := range paths {
			if p == path {
				return
			}
		}
		out[host] = append(paths, path)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT name, desired_path FROM hosts WHERE desired_path != ''`)
	if err != nil {
		return nil, fmt.Errorf("deployed paths: %w", err)
	}
	for rows.Next() {
		var host, path string
		if err := rows.Scan(&host, &path); err != nil {
			rows.Close()
			return nil, fmt.Errorf("deployed paths: %w", err)
		}
		add(host, path)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("deployed paths: %w", err)
	}
	rows, err = s.db.QueryContext(ctx, `SELECT data FROM events WHERE type = $1 ORDER BY id DESC`, desiredEvent)
	if err != nil {
		return nil, fmt.Errorf("deployment history: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("deployment history: %w", err)
		}
		var ev struct {
			Host      string `json:"host"`
			StorePath string `json:"store_path"`
		}
		if json.Unmarshal(data, &ev) == nil && ev.Host != "" {
			add(ev.Host, ev.StorePath)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("deployment history: %w", err)
	}
	return out, nil
}

// ReportedPaths returns the closure each host's agent last reported.
func (s *Store) ReportedPaths(ctx context.Context) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, current_path FROM hosts WHERE current_path != ''`)
	if err != nil {
		return nil, fmt.Errorf("reported paths: %w", err)
	}
	defer rows.Close()
	out := make(map[string]string)
	for rows.Next() {
		var host, path string
		if err := rows.Scan(&host, &path); err != nil {
			return nil, fmt.Errorf("reported paths: %w", err)
		}
		out[host] = path
	}
	return out, rows.Err()
}

// BuiltSince returns the output paths of targets built or found cached that
// finished at or after since, or whose evaluation started then.
func (s *Store) BuiltSince(ctx context.Context, since time.Time) ([]string, error) {
	return s.paths(ctx, `SELECT DISTINCT t.out_path FROM targets t JOIN evaluations e ON e.id = t.eval_id
		WHERE t.out_path != '' AND t.state IN ($1, $2) AND (t.finished >= $3 OR e.created >= $4) ORDER BY t.out_path`,
		TargetBuilt, TargetCached, ms(since), ms(since))
}

// RunningPaths returns the output paths known so far of the evaluations
// still running.
func (s *Store) RunningPaths(ctx context.Context) ([]string, error) {
	return s.paths(ctx, `SELECT DISTINCT t.out_path FROM targets t JOIN evaluations e ON e.id = t.eval_id
		WHERE t.out_path != '' AND e.state = $1 ORDER BY t.out_path`, EvalRunning)
}

func (s *Store) paths(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query paths: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("query paths: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
