package server

import (
	"errors"
	"fmt"
	"time"
)

// What strangers on the network may hold of the builder by default. The
// webhook budget holds one body of the largest size (25 MiB) at a time, and
// many of the usual few kilobytes: a burst of 20 MiB posts keeps the
// builder near 100 MiB resident, garbage included (BenchmarkWebhookBurst).
const (
	DefaultWebhookBudget = 32 << 20
	DefaultMaxStreams    = 64
	DefaultStallTimeout  = 60 * time.Second
)

// Limits bound what unauthenticated clients can make the builder hold.
// Zero values take the defaults.
type Limits struct {
	// WebhookBudget is the bytes of webhook bodies held in memory at once
	// before their signatures are checked; beyond, 503. Default: the
	// larger of DefaultWebhookBudget and max_body_bytes.
	WebhookBudget int64
	// MaxStreams is how many event and log-follow streams may be open at
	// once; beyond, 503. Default DefaultMaxStreams.
	MaxStreams int
	// StallTimeout drops a client when one write to it blocks this long.
	// Default DefaultStallTimeout.
	StallTimeout time.Duration
}

func (l Limits) withDefaults(maxBody int64) Limits {
	if l.WebhookBudget == 0 {
		l.WebhookBudget = max(DefaultWebhookBudget, maxBody)
	}
	if l.MaxStreams == 0 {
		l.MaxStreams = DefaultMaxStreams
	}
	if l.StallTimeout == 0 {
		l.StallTimeout = DefaultStallTimeout
	}
	return l
}

// Validate checks the limits and fills in the default budget; maxBody is
// the largest webhook body accepted, which the budget must hold.
func (l *Limits) Validate(maxBody int64) error {
	if l.WebhookBudget == 0 {
		l.WebhookBudget = max(DefaultWebhookBudget, maxBody)
	}
	if l.MaxStreams <= 0 || l.StallTimeout <= 0 {
		return errors.New("--max-streams and --stall-timeout must be positive")
	}
	if l.WebhookBudget < maxBody {
		return fmt.Errorf("--webhook-body-budget %d is below max_body_bytes %d: the largest webhook could never be read", l.WebhookBudget, maxBody)
	}
	return nil
}
