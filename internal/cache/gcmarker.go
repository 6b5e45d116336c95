package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Keys of the markers a garbage collection publishes in the cache (see
// package gc for the protocol they serve).
const (
	// GCRunningKey holds the marker of the collection in progress; its
	// heartbeat is refreshed while it runs, and it is removed at the end.
	GCRunningKey = "gc/running"
	// GCLastKey holds the marker of the last collection that ended.
	GCLastKey = "gc/last"
)

// GCMarker is what a collection publishes about itself.
type GCMarker struct {
	ID      string    `json:"id"` // random, unique per collection
	Started time.Time `json:"started"`
	// Beat counts heartbeats; BeatAt is the last one by the collector's
	// clock. A running marker whose BeatAt is older than StaleAfter belongs
	// to a collector that died or lost its lease: it deletes nothing more.
	Beat       int64         `json:"beat"`
	BeatAt     time.Time     `json:"beat_at"`
	StaleAfter time.Duration `json:"stale_after"`
	Finished   time.Time     `json:"finished,omitzero"`
	Error      string        `json:"error,omitempty"`
}

// Stale reports whether a running marker's collector is gone at now.
func (m *GCMarker) Stale(now time.Time) bool {
	return now.Sub(m.BeatAt) > m.StaleAfter
}

// same reports whether a and b are the same marker at the same heartbeat.
func (m *GCMarker) same(o *GCMarker) bool {
	if m == nil || o == nil {
		return m == nil && o == nil
	}
	return m.ID == o.ID && m.Beat == o.Beat && m.Finished.Equal(o.Finished)
}

// GCState is what the markers said at one moment.
type GCState struct {
	Running *GCMarker // nil when no collection is running
	Last    *GCMarker // nil before the first collection ended
	// RunningStale is whether Running was stale when the markers were read.
	RunningStale bool
}

// Live reports whether a collection was running and alive when read.
func (s GCState) Live() bool { return s.Running != nil && !s.RunningStale }

// ReadGCState reads the collection markers of b, judging staleness at now.
func ReadGCState(ctx context.Context, b Backend, now time.Time) (GCState, error) {
	var s GCState
	var err error
	if s.Running, err = readGCMarker(ctx, b, GCRunningKey); err != nil {
		return GCState{}, err
	}
	if s.Last, err = readGCMarker(ctx, b, GCLastKey); err != nil {
		return GCState{}, err
	}
	s.RunningStale = s.Running != nil && s.Running.Stale(now)
	return s, nil
}

func readGCMarker(ctx context.Context, b Backend, key string) (*GCMarker, error) {
	rc, err := b.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	var m GCMarker
	if err := json.Unmarshal(body, &m); err != nil || m.ID == "" {
		return nil, fmt.Errorf("read %s: malformed collection marker %.80q", key, body)
	}
	return &m, nil
}

// WriteGCMarker stores m under key (GCRunningKey or GCLastKey).
func WriteGCMarker(ctx context.Context, b Backend, key string, m GCMarker) error {
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := b.Put(ctx, key, bytes.NewReader(body), int64(len(body))); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

// overlapped reports whether a collection may have deleted objects between
// the reads of before and after: one was alive at before, or the markers
// changed in between (a collection started, beat, ended or was replaced).
func overlapped(before, after GCState) bool {
	return before.Live() || !before.Running.same(after.Running) || !before.Last.same(after.Last)
}
