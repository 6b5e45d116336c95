package sqlqueue_test

import (
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/queue/sqlqueue"
)

// TestExpand: every placeholder of the schema has a type in every
// database's map, and the maps differ only where the databases do.
func TestExpand(t *testing.T) {
	for name, ty := range map[string]sqlqueue.Types{"sqlite": sqlqueue.SQLiteTypes, "postgres": sqlqueue.PostgresTypes} {
		for _, stmt := range ty.Expand(sqlqueue.Schema) {
			if strings.ContainsAny(stmt, "{}") {
				t.Errorf("%s: placeholder left in %s", name, stmt)
			}
			if strings.Contains(stmt, "  NOT NULL") || strings.Contains(stmt, "( NOT NULL") {
				t.Errorf("%s: empty type in %s", name, stmt)
			}
		}
	}
	got := sqlqueue.PostgresTypes.Expand([]string{"a {id}, b {int}, c {int64}, d {bool}, e {blob}"})[0]
	if want := "a BIGSERIAL PRIMARY KEY, b INTEGER, c BIGINT, d BOOLEAN, e BYTEA"; got != want {
		t.Errorf("Expand = %q, want %q", got, want)
	}
}
