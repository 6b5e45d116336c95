package main

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/homelab-farm/farm/internal/testenv"
)

// TestServePostgresQueue runs the builder on the shared PostgreSQL queue,
// in a schema of its own that the test drops afterwards.
func TestServePostgresQueue(t *testing.T) {
	t.Parallel()
	dsn := testenv.PostgresURL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "serve_test_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		testenv.Missing(t, "cannot create a schema in PostgreSQL: "+err.Error())
	}
	t.Cleanup(func() {
		a, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer a.Close()
		if _, err := a.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()

	dir := t.TempDir()
	base, _ := startServe(t, "--config", writeServeConfig(t, dir, ""), "--state-dir", filepath.Join(dir, "state"), "--queue", u.String())
	push := readFixture(t, githubFixture+"push.json")
	for _, d := range []string{"a", "b", "a"} {
		if s, body := post(t, base, githubRequest("push", d, push, ghSecret)); s != http.StatusAccepted {
			t.Fatalf("push = %d %s", s, body)
		}
	}
	cb := replace(readFixture(t, forgejoFixture+"push.json"), "bffeb74224043ba2feb48d137756c8a9331c449a", testCommit)
	if s, body := post(t, base, forgejoRequest("push", "c", cb, cbSecret)); s != http.StatusAccepted {
		t.Fatalf("codeberg push = %d %s", s, body)
	}
	evs := evaluations(t, base, "")
	if len(evs) != 1 || len(evs[0].Remotes) != 2 {
		t.Fatalf("evaluations = %+v, want one with two remotes", evs)
	}
	var n int
	if err := admin.QueryRow(`SELECT count(*) FROM ` + schema + `.deliveries`).Scan(&n); err != nil || n != 3 {
		t.Errorf("deliveries in PostgreSQL = %d, %v; want 3", n, err)
	}
}
