package main

import (
	"github.com/homelab-farm/farm/internal/cli"
	"github.com/homelab-farm/farm/internal/server"
)

// registerLimits registers the flags that bound what unauthenticated
// clients can make the builder hold: webhook bodies in memory, open event
// and log streams, stalled writes.
func registerLimits(fs *cli.FlagSet, l *server.Limits) {
	fs.SizeVar(&l.WebhookBudget, "webhook-body-budget", 0,
		"`bytes` of webhook bodies held in memory at once before their signatures are checked, or a size with a unit (64MiB); beyond, 503 (default 32 MiB or max_body_bytes if larger)")
	fs.IntVar(&l.MaxStreams, "max-streams", server.DefaultMaxStreams,
		"open /api/events and log-follow streams at once; beyond, 503")
	fs.DurationVar(&l.StallTimeout, "stall-timeout", server.DefaultStallTimeout,
		"drop a client when one write to it blocks this `long` (streams, cache downloads, logs)")
}
