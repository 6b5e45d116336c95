package state_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/state/statetest"
	"github.com/homelab-farm/farm/internal/testenv"
)

func TestSQLite(t *testing.T) {
	t.Parallel()
	statetest.Run(t, statetest.Backend{
		New: func(t *testing.T) func(t *testing.T) state.Interface {
			path := filepath.Join(t.TempDir(), "state.db")
			return func(t *testing.T) state.Interface {
				s, err := state.Open(context.Background(), path)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
		},
	})
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	statetest.Run(t, statetest.Backend{
		Shared: true,
		New: func(t *testing.T) func(t *testing.T) state.Interface {
			_, dsn := testenv.PostgresSchema(t, "state_test")
			return func(t *testing.T) state.Interface {
				s, err := state.OpenPostgres(context.Background(), dsn, nil)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
		},
	})
}

// TestOpensOldSQLiteFile: a state.db written by earlier builders (this
// schema, with ? placeholders and no PostgreSQL) opens and continues.
func TestOpensOldSQLiteFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE evaluations (id INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER NOT NULL UNIQUE,
			repo TEXT NOT NULL, branch TEXT NOT NULL, commit_id TEXT NOT NULL, deploy INTEGER NOT NULL, state TEXT NOT NULL,
			source_hash TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '',
			created INTEGER NOT NULL, finished INTEGER NOT NULL DEFAULT 0)`,
		`CREATE INDEX evaluations_source ON evaluations (repo, source_hash, state)`,
		`CREATE TABLE targets (id INTEGER PRIMARY KEY AUTOINCREMENT, eval_id INTEGER NOT NULL, host TEXT NOT NULL, kind TEXT NOT NULL,
			system TEXT NOT NULL, drv_path TEXT NOT NULL, out_path TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
			started INTEGER NOT NULL DEFAULT 0, finished INTEGER NOT NULL DEFAULT 0, UNIQUE (eval_id, host))`,
		`CREATE TABLE hosts (name TEXT PRIMARY KEY, desired_path TEXT NOT NULL DEFAULT '', desired_commit TEXT NOT NULL DEFAULT '',
			desired_seq INTEGER NOT NULL DEFAULT 0, manifest BLOB, current_path TEXT NOT NULL DEFAULT '', last_result TEXT NOT NULL DEFAULT '',
			last_reason TEXT NOT NULL DEFAULT '', last_seen INTEGER NOT NULL DEFAULT 0)`,
		`CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, type TEXT NOT NULL, data BLOB NOT NULL)`,
		`CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)`,
		`INSERT INTO evaluations (job_id, repo, branch, commit_id, deploy, state, created) VALUES (9, 'homelab', 'main', 'c9', 1, 'done', 1767323045000)`,
		`INSERT INTO hosts (name, desired_path, desired_commit, desired_seq, manifest) VALUES ('alpha', '/nix/store/a', 'c9', 41, x'7b7d')`,
		`INSERT INTO counters (name, value) VALUES ('deploy_seq', 41)`,
		`INSERT INTO events (time, type, data) VALUES (1767323045000, 'evaluation.queued', CAST('{"job":9}' AS BLOB)), (1767323045001, 'evaluation.finished', CAST('{"job":9}' AS BLOB))`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	db.Close()

	s, err := state.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if e, err := s.EvaluationByJob(ctx, 9); err != nil || !e.Deploy || e.State != state.EvalDone || e.Created.UnixMilli() != 1767323045000 {
		t.Fatalf("old evaluation = %+v, %v", e, err)
	}
	if h, err := s.Host(ctx, "alpha"); err != nil || h.DesiredSeq != 41 || string(h.Manifest) != "{}" {
		t.Fatalf("old host = %+v, %v", h, err)
	}
	if seq, err := s.NextSeq(ctx); err != nil || seq != 42 {
		t.Fatalf("NextSeq = %d, %v; want 42, after the old file's 41", seq, err)
	}
	ev, err := s.Append(ctx, "new", nil)
	if err != nil || ev.ID != 3 {
		t.Fatalf("Append = %+v, %v; want id 3 after the old file's two events", ev, err)
	}
	if evs, err := s.EventsAfter(ctx, 1, 0); err != nil || len(evs) != 2 || evs[0].Type != "evaluation.finished" {
		t.Fatalf("EventsAfter(1) = %+v, %v", evs, err)
	}
}

// TestCarrySeq: moving to PostgreSQL keeps the deploy sequence above the
// one of the SQLite file the builder used before.
func TestCarrySeq(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, dsn := testenv.PostgresSchema(t, "state_test")
	pg, err := state.OpenPostgres(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	path := filepath.Join(t.TempDir(), "state.db")
	if v, err := state.CarrySeq(ctx, pg, path); err != nil || v != 0 {
		t.Fatalf("CarrySeq without a file = %d, %v; want 0, nil", v, err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("CarrySeq made a SQLite file")
	}
	old, err := state.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := old.NextSeq(ctx); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()
	if v, err := state.CarrySeq(ctx, pg, path); err != nil || v != 5 {
		t.Fatalf("CarrySeq = %d, %v; want 5", v, err)
	}
	if v, err := pg.NextSeq(ctx); err != nil || v != 6 {
		t.Fatalf("NextSeq after CarrySeq = %d, %v; want 6", v, err)
	}
	if v, err := state.CarrySeq(ctx, pg, path); err != nil || v != 5 {
		t.Fatalf("CarrySeq again = %d, %v", v, err)
	}
	if v, err := pg.NextSeq(ctx); err != nil || v != 7 {
		t.Fatalf("NextSeq after a second CarrySeq = %d, %v; want 7 (never back)", v, err)
	}
}
