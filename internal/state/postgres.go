package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/homelab-farm/farm/internal/queue/sqlqueue"
)

// eventLockKey is the first key of the advisory lock that orders appends
// (the second is the schema's hash, so that schemas do not contend).
const eventLockKey = 0x6661726d // "farm"

// relistenEvery is how long the listener waits between attempts to
// reconnect, and how often Changed fires while it is disconnected.
const relistenEvery = time.Second

// OpenPostgres connects to the PostgreSQL database at dsn (pgx's URL or
// key=value form; search_path selects a schema) and creates the tables if
// needed. Any number of Stores on one database share one state: see the
// package documentation for seq, event order and wake-ups. log receives
// the listener's connection errors; nil discards them.
func OpenPostgres(ctx context.Context, dsn string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres state: %w", err)
	}
	db.SetMaxOpenConns(8)
	fail := func(err error) (*Store, error) {
		db.Close()
		return nil, fmt.Errorf("open postgres state: %w", err)
	}
	var schemaName string
	if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schemaName); err != nil {
		return fail(err)
	}
	h := fnv.New64a()
	h.Write([]byte(schemaName))
	sum := h.Sum64()
	channel := fmt.Sprintf("farm_events_%016x", sum)
	lockKey := int32(sum)
	d := dialect{
		lockEvents: func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, eventLockKey, lockKey)
			return err
		},
		notify: func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `SELECT pg_notify($1, '')`, channel)
			return err
		},
	}
	s, err := newStore(ctx, db, sqlqueue.PostgresTypes, d)
	if err != nil {
		return fail(err)
	}
	// Listen before returning, so that a follower that takes Changed after
	// Open sees every append that commits after that.
	conn, err := listen(ctx, dsn, channel)
	if err != nil {
		return fail(err)
	}
	lctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	s.stop = func() { stop(); <-done }
	go func() {
		defer close(done)
		s.follow(lctx, conn, dsn, channel, log)
	}()
	return s, nil
}

// listen opens a connection listening on channel.
func listen(ctx context.Context, dsn, channel string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("listen for events: %w", err)
	}
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{channel}.Sanitize()); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("listen for events: %w", err)
	}
	return conn, nil
}

// follow wakes waiters on every notification on conn until ctx ends. When
// the connection fails it reconnects, waking waiters at every attempt so
// that followers read the log meanwhile.
func (s *Store) follow(ctx context.Context, conn *pgx.Conn, dsn, channel string, log *slog.Logger) {
	for {
		var err error
		for err == nil {
			_, err = conn.WaitForNotification(ctx)
			if err == nil {
				s.wakeWaiters()
			}
		}
		conn.Close(context.WithoutCancel(ctx))
		if ctx.Err() != nil {
			return
		}
		log.Warn("event listener lost its connection; reconnecting", "err", err)
		for conn = nil; conn == nil; {
			s.wakeWaiters()
			select {
			case <-ctx.Done():
				return
			case <-time.After(relistenEvery):
			}
			if conn, err = listen(ctx, dsn, channel); err != nil && !errors.Is(err, context.Canceled) {
				log.Warn("event listener cannot reconnect", "err", err)
			}
		}
		s.wakeWaiters() // what committed while nobody listened
	}
}
