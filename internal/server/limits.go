package server

import (
	"time"

	"github.com/homelab-farm/farm/internal/config"
)

// Limits bound what unauthenticated clients can make the builder hold.
// Zero values take the defaults (config.DefaultWebhookBudget and the
// others; config.Config.Validate checks values from flags).
type Limits struct {
	// WebhookBudget is the bytes of webhook bodies held in memory at once
	// before their signatures are checked; beyond, 503. Default: the
	// larger of config.DefaultWebhookBudget and max_body_bytes.
	WebhookBudget int64
	// MaxStreams is how many event and log-follow streams may be open at
	// once; beyond, 503.
	MaxStreams int
	// StallTimeout drops a client when one write to it blocks this long.
	StallTimeout time.Duration
}

func (l Limits) withDefaults(maxBody int64) Limits {
	if l.WebhookBudget == 0 {
		l.WebhookBudget = max(config.DefaultWebhookBudget, maxBody)
	}
	if l.MaxStreams == 0 {
		l.MaxStreams = config.DefaultMaxStreams
	}
	if l.StallTimeout == 0 {
		l.StallTimeout = config.DefaultStallTimeout
	}
	return l
}
