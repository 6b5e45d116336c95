package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/state"
)

// Schedule defaults.
const (
	// DefaultInterval is how often a scheduled collection runs.
	DefaultInterval = 24 * time.Hour
	// DefaultRetryAfter is how soon a scheduled collection that found
	// another one running tries again.
	DefaultRetryAfter = time.Hour
	// DefaultPoll is how often Run looks at the shared schedule while it
	// waits (another instance may have moved it).
	DefaultPoll = 5 * time.Minute
	// DefaultGrace is the grace period `builder cache gc` uses by default.
	DefaultGrace = time.Hour
	// MinGrace is the shortest grace period a schedule accepts: younger
	// objects may belong to a push in flight that bypasses cache.Pusher.
	MinGrace = time.Minute
)

// ScheduleStore is what a Schedule needs of the builder's state;
// *state.Store is the real one. It is safe for concurrent use, and on a
// shared database (PostgreSQL) ClaimCollection gives each due time to one
// caller of all instances.
type ScheduleStore interface {
	RootSource
	ClaimCollection(ctx context.Context, now, next time.Time) (bool, error)
	NextCollection(ctx context.Context) (time.Time, error)
	PostponeCollection(ctx context.Context, at time.Time) error
	RecordCollection(ctx context.Context, c state.Collection) (state.Collection, error)
	Append(ctx context.Context, typ string, data any) (state.Event, error)
}

var _ ScheduleStore = (*state.Store)(nil)

// ScheduleMetrics receives what scheduled collections measure;
// *metrics.Metrics is the real one.
type ScheduleMetrics interface {
	CacheCollected(d time.Duration, freedObjects, freedBytes, cacheObjects, cacheBytes int64)
	Failure(kind string)
}

// Schedule collects the cache on an interval with the roots the builder's
// state gives, records every run in that state, appends a
// farmapi.CacheCollected or farmapi.CacheCollectionFailed event (the
// notifier tells of failures) and updates the metrics.
//
// Several builder instances sharing one database may each Run a Schedule:
// each due time is claimed by one of them (ClaimCollection), and the
// collector's lease in the cache (gc/running) keeps any other collection,
// a manual `builder cache gc` included, from running at the same time; a
// run that meets one is retried after RetryAfter and is not a failure.
type Schedule struct {
	// Collector collects; DryRun must be off, and its Now is the clock of
	// the schedule too.
	Collector *Collector
	Store     ScheduleStore
	Retention Retention
	// Metrics, if set, is told about each run.
	Metrics ScheduleMetrics
	// Instance names this builder in the records (its host name).
	Instance string
	// Interval between runs; 0 means DefaultInterval.
	Interval time.Duration
	// RetryAfter another collection was running; 0 means
	// DefaultRetryAfter.
	RetryAfter time.Duration
	// Poll is the longest Run sleeps before it looks at the schedule
	// again; 0 means DefaultPoll.
	Poll time.Duration
	Log  *slog.Logger
}

// Validate checks the settings.
func (s *Schedule) Validate() error {
	var errs []error
	if s.Collector == nil {
		errs = append(errs, errors.New("no collector"))
	} else {
		if err := s.Collector.Validate(); err != nil {
			errs = append(errs, err)
		}
		if s.Collector.DryRun {
			errs = append(errs, errors.New("a scheduled collection cannot be a dry run"))
		}
		if s.Collector.Grace < MinGrace {
			errs = append(errs, fmt.Errorf("grace %s: want at least %s (younger objects may belong to a push in flight)", s.Collector.Grace, MinGrace))
		}
	}
	if s.Store == nil {
		errs = append(errs, errors.New("no state store"))
	}
	if err := s.Retention.Validate(); err != nil {
		errs = append(errs, err)
	}
	if s.Interval < 0 || s.RetryAfter < 0 || s.Poll < 0 {
		errs = append(errs, fmt.Errorf("interval %s, retry after %s, poll %s: want zero or more", s.Interval, s.RetryAfter, s.Poll))
	}
	return errors.Join(errs...)
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (s *Schedule) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Run collects whenever a run is due, until ctx ends; it returns ctx's
// error, or a validation error at once. Failed runs are recorded and
// reported, not returned: the schedule goes on.
func (s *Schedule) Run(ctx context.Context) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("collection schedule: %w", err)
	}
	poll := orDefault(s.Poll, DefaultPoll)
	for {
		if _, _, err := s.RunDue(ctx); err != nil && ctx.Err() == nil {
			s.log().Warn("scheduled cache collection", "err", err)
		}
		wait := poll
		if due, err := s.Store.NextCollection(ctx); err == nil && !due.IsZero() {
			wait = min(max(due.Sub(s.Collector.now()), time.Second), poll)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// RunDue collects if a run is due and no other instance claimed it. ran
// reports whether this call collected (or tried to: c.Error says how it
// failed). The error is for failing to claim or record, and for a run that
// met another collection (wrapping ErrRunning; it is retried after
// RetryAfter).
func (s *Schedule) RunDue(ctx context.Context) (c state.Collection, ran bool, err error) {
	now := s.Collector.now()
	claimed, err := s.Store.ClaimCollection(ctx, now, now.Add(orDefault(s.Interval, DefaultInterval)))
	if err != nil || !claimed {
		return state.Collection{}, false, err
	}
	c, err = s.Collect(ctx)
	if errors.Is(err, ErrRunning) {
		if perr := s.Store.PostponeCollection(ctx, now.Add(orDefault(s.RetryAfter, DefaultRetryAfter))); perr != nil {
			err = errors.Join(err, perr)
		}
		return c, false, err
	}
	return c, true, err
}

// Collect runs one collection now, whatever the schedule says, and records
// and reports it. A collection that met another one running returns an
// error wrapping ErrRunning and records nothing; one cut short by ctx
// records nothing either and makes the next run due at once; any other
// failure is recorded (c.Error), reported, and returned.
func (s *Schedule) Collect(ctx context.Context) (state.Collection, error) {
	if err := s.Validate(); err != nil {
		return state.Collection{}, fmt.Errorf("scheduled collection: %w", err)
	}
	c := state.Collection{Instance: s.Instance, Started: s.Collector.now()}
	hosts, err := s.collect(ctx, &c)
	if errors.Is(err, ErrRunning) {
		s.log().Info("scheduled cache collection: another collection is running; retrying later", "err", err)
		return c, err
	}
	if err != nil && ctx.Err() != nil {
		// The builder stops: not a failure to tell of. The run is due
		// again at once, for this instance when it is back or another.
		if perr := s.Store.PostponeCollection(context.WithoutCancel(ctx), c.Started); perr != nil {
			err = errors.Join(err, perr)
		}
		return c, err
	}
	c.Duration = s.Collector.now().Sub(c.Started)
	if err != nil {
		c.Error = err.Error()
	} else {
		c.Hosts = hosts
	}
	ctx = context.WithoutCancel(ctx) // a run cut short is still recorded
	rec, recErr := s.Store.RecordCollection(ctx, c)
	if recErr == nil {
		c = rec
	}
	ev := farmapi.CollectionData{Collection: c.ID, Instance: c.Instance, Started: c.Started, DurationMS: c.Duration.Milliseconds(),
		FreedObjects: c.FreedObjects, FreedBytes: c.FreedBytes, KeptPaths: c.KeptPaths,
		CacheObjects: c.CacheObjects, CacheBytes: c.CacheBytes, Error: c.Error}
	typ := farmapi.CacheCollected
	if err != nil {
		typ = farmapi.CacheCollectionFailed
	}
	if _, evErr := s.Store.Append(ctx, string(typ), ev); evErr != nil {
		recErr = errors.Join(recErr, evErr)
	}
	if s.Metrics != nil {
		if err != nil {
			s.Metrics.Failure("gc")
		} else {
			s.Metrics.CacheCollected(c.Duration, c.FreedObjects, c.FreedBytes, c.CacheObjects, c.CacheBytes)
		}
	}
	if err == nil && recErr == nil {
		s.log().Info("cache collected", "freed_objects", c.FreedObjects, "freed_bytes", c.FreedBytes,
			"cache_objects", c.CacheObjects, "cache_bytes", c.CacheBytes, "took", c.Duration)
	}
	if recErr != nil {
		recErr = fmt.Errorf("record collection: %w", recErr)
	}
	return c, errors.Join(err, recErr)
}

// collect computes the roots, collects, and measures the hosts' kept
// generations, filling c.
func (s *Schedule) collect(ctx context.Context, c *state.Collection) ([]state.HostBytes, error) {
	roots, err := FleetRoots(ctx, s.Store, s.Retention, c.Started)
	if err != nil {
		return nil, fmt.Errorf("roots: %w", err)
	}
	paths := make([]string, len(roots))
	for i, r := range roots {
		paths[i] = r.Path
	}
	res, err := s.Collector.Collect(ctx, paths)
	if res != nil {
		gone := res.Gone()
		c.FreedObjects, c.FreedBytes = int64(gone.Objects), gone.Bytes
		c.KeptPaths = int64(res.KeptNarInfos.Objects)
		kept := res.Kept()
		c.CacheObjects, c.CacheBytes = int64(kept.Objects), kept.Bytes
	}
	if err != nil {
		return nil, err
	}
	hostRoots, err := HostRoots(ctx, s.Store, s.Retention)
	if err != nil {
		return nil, err
	}
	return s.Collector.HostBytes(ctx, hostRoots)
}

// HostRoots returns, for every host, the closures it may run that r keeps:
// its last r.Generations deployed ones and the one it reported.
func HostRoots(ctx context.Context, src RootSource, r Retention) (map[string][]string, error) {
	deployed, err := src.DeployedPaths(ctx, r.Generations)
	if err != nil {
		return nil, fmt.Errorf("deployed closures: %w", err)
	}
	reported, err := src.ReportedPaths(ctx)
	if err != nil {
		return nil, fmt.Errorf("reported closures: %w", err)
	}
	out := make(map[string][]string, len(deployed))
	for _, host := range sortedKeys(deployed, reported) {
		paths := append([]string(nil), deployed[host]...)
		if p := reported[host]; p != "" {
			paths = append(paths, p)
		}
		out[host] = paths
	}
	return out, nil
}
