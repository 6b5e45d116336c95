package main

import (
	"context"
	"io"

	"github.com/homelab-farm/farm/internal/farm"
)

// runServe runs the farm: webhooks in, the durable queue, the API, the
// binary cache read-only at /nix-cache/, and (with --workers) workers.
func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return farm.Serve(ctx, args, getenv, stdout, stderr, farm.ServeOptions{})
}
