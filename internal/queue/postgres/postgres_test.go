package postgres_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/queue/postgres"
	"github.com/homelab-farm/farm/internal/testenv"
)

// schemaDSN creates a schema of its own for one test, drops it at cleanup,
// and returns a DSN whose search_path points at it.
func schemaDSN(t *testing.T) string {
	t.Helper()
	dsn := testenv.PostgresURL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "queue_test_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		testenv.Missing(t, "cannot create a schema in PostgreSQL: "+err.Error())
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	qv := u.Query()
	qv.Set("search_path", schema)
	u.RawQuery = qv.Encode()
	return u.String()
}

func TestContract(t *testing.T) {
	t.Parallel()
	queue.RunContractTests(t, func(t *testing.T, opts queue.Options) queue.Queue {
		q, err := postgres.Open(context.Background(), schemaDSN(t), opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		return q
	})
}
