package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Retry is an exponential backoff within a time budget.
type Retry struct {
	Initial time.Duration // first wait; default 250ms
	Max     time.Duration // longest wait; default 10s
	Budget  time.Duration // total time for one object; default 2m
}

func (r Retry) withDefaults() Retry {
	if r.Initial <= 0 {
		r.Initial = 250 * time.Millisecond
	}
	if r.Max <= 0 {
		r.Max = 10 * time.Second
	}
	if r.Budget <= 0 {
		r.Budget = 2 * time.Minute
	}
	return r
}

// localError marks a failure to read the local store, which no retry cures.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// do runs f until it succeeds, fails with a local error, the context ends or
// the budget is spent.
func (r Retry) do(ctx context.Context, log *slog.Logger, what string, f func() error) error {
	r = r.withDefaults()
	deadline := time.Now().Add(r.Budget)
	wait := r.Initial
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		var le *localError
		if errors.As(err, &le) || ctx.Err() != nil {
			return err
		}
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		log.Warn("upload failed, retrying", "object", what, "attempt", attempt, "wait", wait, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, r.Max)
	}
}
