package state

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"

	"github.com/homelab-farm/farm/internal/queue/sqlqueue"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Open opens (creating) the state in the SQLite file at path. One process
// owns the file: Changed fires for appends on this Store only.
func Open(ctx context.Context, path string) (*Store, error) {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(ON)")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	db.SetMaxOpenConns(1) // one writer; SQLite serialises writes anyway
	// One connection serialises appends, so ids are taken in commit order
	// without a lock of our own.
	s, err := newStore(ctx, db, sqlqueue.SQLiteTypes, dialect{})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	return s, nil
}
