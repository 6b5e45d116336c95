package state

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Collection is one run of the binary cache's garbage collection.
type Collection struct {
	ID int64 `json:"id"`
	// Instance names the builder that ran it.
	Instance string        `json:"instance,omitempty"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration"`
	// Freed is every object that went (narinfos, NARs, logs) and its bytes.
	FreedObjects int64 `json:"freed_objects"`
	FreedBytes   int64 `json:"freed_bytes"`
	// KeptPaths is how many narinfos (store paths) stayed.
	KeptPaths int64 `json:"kept_paths"`
	// Cache is what the cache holds after the run: narinfos and NARs.
	CacheObjects int64 `json:"cache_objects"`
	CacheBytes   int64 `json:"cache_bytes"`
	// Error is why the run failed; empty when it succeeded.
	Error string `json:"error,omitempty"`
	// Hosts are the bytes each host's kept generations hold (successful
	// runs only), by host name.
	Hosts []HostBytes `json:"hosts,omitempty"`
}

// HostBytes is what the closures a host may still run hold in the cache.
type HostBytes struct {
	Host string `json:"host"`
	// Paths is the number of distinct store paths in the closures.
	Paths int64 `json:"paths"`
	// NarBytes is their unpacked size (narinfo NarSize); FileBytes what the
	// cache stores for them (FileSize, compressed).
	NarBytes  int64 `json:"nar_bytes"`
	FileBytes int64 `json:"file_bytes"`
}

// SizePoint is the cache's size after one successful collection.
type SizePoint struct {
	Time    time.Time `json:"time"`
	Objects int64     `json:"objects"`
	Bytes   int64     `json:"bytes"`
}

// CacheHistory is what the dashboard shows of the cache.
type CacheHistory struct {
	// Sizes are the cache's sizes after each successful collection since
	// the time asked for, oldest first.
	Sizes []SizePoint `json:"sizes"`
	// Last are the latest collections, failed ones included, newest first.
	Last []Collection `json:"last"`
	// Hosts are the per-host bytes of the latest successful collection.
	Hosts []HostBytes `json:"hosts"`
}

// collectionDueKey is the counter row holding when the next scheduled
// collection is due (Unix milliseconds).
const collectionDueKey = "gc_next_due"

const collectionCols = `id, instance, started, duration_ms, freed_objects, freed_bytes, kept_paths,
	cache_objects, cache_bytes, error, hosts`

// RecordCollection stores a finished collection and returns it with its id.
func (s *Store) RecordCollection(ctx context.Context, c Collection) (Collection, error) {
	hosts, err := json.Marshal(c.Hosts)
	if err != nil {
		return Collection{}, fmt.Errorf("record collection: %w", err)
	}
	c.Started = c.Started.UTC().Truncate(time.Millisecond)
	c.Duration = c.Duration.Truncate(time.Millisecond)
	err = s.db.QueryRowContext(ctx, `INSERT INTO collections (instance, started, duration_ms, freed_objects, freed_bytes,
		kept_paths, cache_objects, cache_bytes, error, hosts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
		c.Instance, ms(c.Started), c.Duration.Milliseconds(), c.FreedObjects, c.FreedBytes, c.KeptPaths,
		c.CacheObjects, c.CacheBytes, c.Error, hosts).Scan(&c.ID)
	if err != nil {
		return Collection{}, fmt.Errorf("record collection: %w", err)
	}
	return c, nil
}

func scanCollection(sc interface{ Scan(...any) error }) (Collection, error) {
	var c Collection
	var started, dur int64
	var hosts []byte
	err := sc.Scan(&c.ID, &c.Instance, &started, &dur, &c.FreedObjects, &c.FreedBytes, &c.KeptPaths,
		&c.CacheObjects, &c.CacheBytes, &c.Error, &hosts)
	if err != nil {
		return c, err
	}
	c.Started, c.Duration = fromMS(started), time.Duration(dur)*time.Millisecond
	if len(hosts) > 0 {
		if err := json.Unmarshal(hosts, &c.Hosts); err != nil {
			return c, fmt.Errorf("collection %d hosts: %w", c.ID, err)
		}
	}
	return c, nil
}

func (s *Store) collections(ctx context.Context, query string, args ...any) ([]Collection, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Collection
	for rows.Next() {
		c, err := scanCollection(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// CacheHistory returns the cache's sizes after the successful collections
// that started at or after since (oldest first), the last limit
// collections (newest first; 0 means 20) and the per-host bytes of the
// latest successful one.
func (s *Store) CacheHistory(ctx context.Context, since time.Time, limit int) (CacheHistory, error) {
	if limit <= 0 {
		limit = 20
	}
	var h CacheHistory
	sizes, err := s.collections(ctx, `SELECT `+collectionCols+` FROM collections
		WHERE error = '' AND started >= $1 ORDER BY started, id`, ms(since))
	if err != nil {
		return h, fmt.Errorf("cache history: %w", err)
	}
	h.Sizes = make([]SizePoint, 0, len(sizes))
	for _, c := range sizes {
		h.Sizes = append(h.Sizes, SizePoint{Time: c.Started.Add(c.Duration), Objects: c.CacheObjects, Bytes: c.CacheBytes})
	}
	if h.Last, err = s.collections(ctx, `SELECT `+collectionCols+` FROM collections
		ORDER BY started DESC, id DESC LIMIT $1`, limit); err != nil {
		return h, fmt.Errorf("last collections: %w", err)
	}
	latest, err := s.collections(ctx, `SELECT `+collectionCols+` FROM collections
		WHERE error = '' ORDER BY started DESC, id DESC LIMIT 1`)
	if err != nil {
		return h, fmt.Errorf("latest collection: %w", err)
	}
	if len(latest) == 1 {
		h.Hosts = latest[0].Hosts
	}
	return h, nil
}

// ClaimCollection claims the scheduled collection due at or before now, for
// the caller alone, and makes the next one due at next. It returns false,
// changing nothing, when the next collection is due after now (another
// instance claimed this one). Exactly one of any number of concurrent
// callers on one database gets true for each due time.
func (s *Store) ClaimCollection(ctx context.Context, now, next time.Time) (bool, error) {
	rows, err := s.db.QueryContext(ctx, `INSERT INTO counters (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value WHERE counters.value <= $3 RETURNING value`,
		collectionDueKey, ms(next), ms(now))
	if err != nil {
		return false, fmt.Errorf("claim collection: %w", err)
	}
	defer rows.Close()
	claimed := rows.Next()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("claim collection: %w", err)
	}
	return claimed, nil
}

// NextCollection returns when the next scheduled collection is due: the
// zero time if none was ever claimed.
func (s *Store) NextCollection(ctx context.Context) (time.Time, error) {
	var v int64
	err := s.db.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = $1`, collectionDueKey).Scan(&v)
	if err != nil && !isNoRows(err) {
		return time.Time{}, fmt.Errorf("next collection: %w", err)
	}
	return fromMS(v), nil
}

// PostponeCollection makes the next scheduled collection due at at,
// whatever was set before (a claimed run that could not collect asks to be
// retried sooner than its interval).
func (s *Store) PostponeCollection(ctx context.Context, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO counters (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, collectionDueKey, ms(at))
	if err != nil {
		return fmt.Errorf("postpone collection: %w", err)
	}
	return nil
}
