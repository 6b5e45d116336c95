package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"

	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/queue/sqlqueue"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Queue is the SQLite queue. Close it to stop its checkpointer.
type Queue struct {
	*sqlqueue.Queue
	stop context.CancelFunc
	done chan struct{}
}

var _ queue.Queue = (*Queue)(nil)

// checkpointEvery is how often the background checkpointer copies the
// write-ahead log into the database file.
const checkpointEvery = time.Second

// Open opens (creating if needed) the queue in the SQLite file at path.
//
// Checkpoints run in the background (every second, PASSIVE) instead of
// inside whichever commit happens to fill the log, so that no webhook waits
// for the database file's fsync.
func Open(ctx context.Context, path string, opts queue.Options) (*Queue, error) {
	pragmas := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(ON)"} {
		pragmas.Add("_pragma", p)
	}
	pragmas.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + pragmas.Encode()
	pragmas.Add("_pragma", "wal_autocheckpoint(0)")
	w, err := sql.Open("sqlite", "file:"+path+"?"+pragmas.Encode())
	if err != nil {
		return nil, fmt.Errorf("open queue %s: %w", path, err)
	}
	// One writer connection: SQLite takes one write transaction at a time,
	// and waiting in Go's pool is cheaper than SQLITE_BUSY retries.
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open queue %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	q, err := sqlqueue.New(ctx, w, r, sqlqueue.Dialect{Types: sqlqueue.SQLiteTypes, GroupCommit: true, CacheStatements: true}, opts)
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open queue %s: %w", path, err)
	}
	cctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	sq := &Queue{Queue: q, stop: stop, done: make(chan struct{})}
	go sq.checkpoint(cctx, r)
	return sq, nil
}

// checkpoint copies the log into the database file until ctx ends.
func (q *Queue) checkpoint(ctx context.Context, db *sql.DB) {
	defer close(q.done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// Errors (SQLITE_BUSY while another checkpoint runs) are retried next tick.
			_, _ = db.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
		}
	}
}

// Close stops the checkpointer and closes the database.
func (q *Queue) Close() error {
	q.stop()
	<-q.done
	return q.Queue.Close()
}
