package state_test

import (
	"context"
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
