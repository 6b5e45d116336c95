package main

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/server/servertest"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/testenv"
)

// TestServePostgresQueue runs the builder on the shared PostgreSQL queue
// (--queue), in a schema of its own that the test drops afterwards.
func TestServePostgresQueue(t *testing.T) {
	t.Parallel()
	schema, dsn := testenv.PostgresSchema(t, "serve_test")
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()

	dir := t.TempDir()
	base, _ := startServe(t, "--config", servertest.WriteConfig(t, dir, ""), "--state-dir", filepath.Join(dir, "state"), "--queue", dsn)
	push := servertest.ForgeFixture(t, "github/push.json")
	for _, d := range []string{"a", "b", "a"} {
		if s, body := servertest.Post(t, base, servertest.GitHubHook("push", d, push, servertest.GHSecret)); s != http.StatusAccepted {
			t.Fatalf("push = %d %s", s, body)
		}
	}
	cb := servertest.Replace(servertest.ForgeFixture(t, "forgejo/push.json"), "bffeb74224043ba2feb48d137756c8a9331c449a", servertest.TestCommit)
	if s, body := servertest.Post(t, base, servertest.ForgejoHook("push", "c", cb, servertest.CBSecret)); s != http.StatusAccepted {
		t.Fatalf("codeberg push = %d %s", s, body)
	}
	evs := servertest.Jobs(t, base, "")
	if len(evs) != 1 || len(evs[0].Remotes) != 2 {
		t.Fatalf("evaluations = %+v, want one with two remotes", evs)
	}
	var n int
	if err := admin.QueryRow(`SELECT count(*) FROM ` + schema + `.deliveries`).Scan(&n); err != nil || n != 3 {
		t.Errorf("deliveries in PostgreSQL = %d, %v; want 3", n, err)
	}
	// --queue alone keeps its meaning: the state stays in SQLite.
	if _, err := os.Stat(filepath.Join(dir, "state", "state.db")); err != nil {
		t.Errorf("with --queue only, the state is not in state.db: %v", err)
	}
}

// TestServeDatabaseTwoInstances: with --database, two builders on one
// PostgreSQL schema keep the queue and the state there (no SQLite files)
// and are one farm: the event one records streams from the other, and a
// client resuming on the first with Last-Event-ID gets nothing twice.
func TestServeDatabaseTwoInstances(t *testing.T) {
	t.Parallel()
	schema, dsn := testenv.PostgresSchema(t, "serve_test")
	dir := t.TempDir()
	cfgFile := servertest.WriteConfig(t, dir, "")
	var bases [2]string
	for i := range bases {
		bases[i], _ = startServe(t, "--config", cfgFile, "--state-dir", filepath.Join(dir, fmt.Sprint("state", i)), "--database", dsn)
	}
	push := servertest.ForgeFixture(t, "github/push.json")
	if s, body := servertest.Post(t, bases[0], servertest.GitHubHook("push", "a", push, servertest.GHSecret)); s != http.StatusAccepted {
		t.Fatalf("push = %d %s", s, body)
	}
	var evs []state.Event
	for deadline := time.Now().Add(15 * time.Second); len(evs) == 0 && time.Now().Before(deadline); {
		evs = readEvents(t, bases[1], 0, 1)
	}
	if len(evs) != 1 || evs[0].Type != string(farmapi.EvalQueued) {
		t.Fatalf("events on the second builder = %+v; want the first's %s", evs, farmapi.EvalQueued)
	}
	if again := readEvents(t, bases[0], evs[0].ID, 1); len(again) != 0 {
		t.Errorf("resuming on the first builder after event %d gave %+v; want nothing", evs[0].ID, again)
	}
	if jobs := servertest.Jobs(t, bases[1], ""); len(jobs) != 1 {
		t.Errorf("evaluations on the second builder = %+v; want the first's job", jobs)
	}
	for i := range bases {
		for _, f := range []string{"state.db", "queue.db"} {
			if _, err := os.Stat(filepath.Join(dir, fmt.Sprint("state", i), f)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("builder %d made %s (%v); want everything in PostgreSQL", i, f, err)
			}
		}
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var n int
	if err := admin.QueryRow(`SELECT count(*) FROM ` + schema + `.events`).Scan(&n); err != nil || n != 1 {
		t.Errorf("events in PostgreSQL = %d, %v; want 1", n, err)
	}
}
