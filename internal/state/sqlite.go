package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"

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

// CarrySeq raises to's deploy sequence to the one in the SQLite state file
// at path, if there is one, and returns that. A builder whose state moves
// from SQLite to PostgreSQL calls it, so that the manifests it signs next
// are above the ones its agents already applied (they refuse lower ones).
func CarrySeq(ctx context.Context, to Interface, path string) (uint64, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	from, err := Open(ctx, path)
	if err != nil {
		return 0, err
	}
	defer from.Close()
	v, err := from.Seq(ctx)
	if err != nil {
		return 0, fmt.Errorf("deploy seq of %s: %w", path, err)
	}
	if v == 0 {
		return 0, nil
	}
	return v, to.RaiseSeq(ctx, v)
}
