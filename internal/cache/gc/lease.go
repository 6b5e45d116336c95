package gc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
)

// lease is a running collection's marker in the cache and the heartbeat
// that keeps it fresh.
type lease struct {
	c      *Collector
	mu     sync.Mutex
	marker cache.GCMarker
	lastOK time.Time // last heartbeat written, by the collector's clock
	// deleted is set before the first delete: a collection that deleted
	// nothing leaves no trace.
	deleted bool
	stop    chan struct{}
	done    chan struct{}
}

// startLease refuses to start while another live collection runs, then
// publishes this collection's marker and starts its heartbeat.
func startLease(ctx context.Context, c *Collector, started time.Time) (*lease, error) {
	st, err := cache.ReadGCState(ctx, c.Backend, c.now())
	if err != nil {
		return nil, fmt.Errorf("collect %s: %w", c.Backend, err)
	}
	if st.Live() {
		return nil, fmt.Errorf("collect %s: %w (%s, started %s, last heartbeat %s)", c.Backend, ErrRunning,
			st.Running.ID, st.Running.Started.Format(time.RFC3339), st.Running.BeatAt.Format(time.RFC3339))
	}
	if st.Running != nil {
		c.log().Warn("the previous collection died; taking over", "collection", st.Running.ID, "started", st.Running.Started)
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	l := &lease{c: c, stop: make(chan struct{}), done: make(chan struct{}), marker: cache.GCMarker{
		ID: hex.EncodeToString(id[:]), Started: started, Beat: 1, BeatAt: started, StaleAfter: c.staleAfter(),
	}}
	if err := cache.WriteGCMarker(ctx, c.Backend, cache.GCRunningKey, l.marker); err != nil {
		return nil, fmt.Errorf("collect %s: %w", c.Backend, err)
	}
	l.lastOK = started
	go l.beat(ctx)
	return l, nil
}

// beat refreshes the marker every StaleAfter/4 until stopped.
func (l *lease) beat(ctx context.Context) {
	defer close(l.done)
	t := time.NewTicker(l.c.staleAfter() / 4)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		m := l.marker
		l.mu.Unlock()
		m.Beat++
		m.BeatAt = l.c.now()
		if err := cache.WriteGCMarker(ctx, l.c.Backend, cache.GCRunningKey, m); err != nil {
			l.c.log().Warn("collection heartbeat", "err", err)
			continue
		}
		l.mu.Lock()
		l.marker, l.lastOK = m, m.BeatAt
		l.mu.Unlock()
	}
}

// check fails once the last heartbeat is older than half of StaleAfter:
// past that, a pusher may soon take the collection for dead. Otherwise it
// returns how long a delete may take: until three quarters of StaleAfter.
func (l *lease) check() (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	age := l.c.now().Sub(l.lastOK)
	if age > l.c.staleAfter()/2 {
		return 0, fmt.Errorf("%w: last heartbeat %s ago", ErrLeaseLost, age.Round(time.Millisecond))
	}
	return l.c.staleAfter()*3/4 - age, nil
}

// deleting records that the collection is about to delete.
func (l *lease) deleting() {
	l.mu.Lock()
	l.deleted = true
	l.mu.Unlock()
}

// end stops the heartbeat, records the collection in gc/last (if it deleted
// anything, even if it then failed) and removes gc/running.
func (l *lease) end(ctx context.Context, failure error) error {
	close(l.stop)
	<-l.done
	ctx = context.WithoutCancel(ctx) // a cancelled run still clears its marker
	m := l.marker
	m.Finished = l.c.now()
	if failure != nil {
		m.Error = failure.Error()
	}
	if l.deleted {
		if err := cache.WriteGCMarker(ctx, l.c.Backend, cache.GCLastKey, m); err != nil {
			return err
		}
	}
	if err := l.c.Backend.Delete(ctx, cache.GCRunningKey); err != nil {
		return fmt.Errorf("remove %s: %w", cache.GCRunningKey, err)
	}
	return nil
}
