package main

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/homelab-farm/farm/internal/cli"
	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/farm"
	"github.com/homelab-farm/farm/internal/pipeline"
)

// runServe runs the farm: webhooks in, the durable queue, the API, the
// binary cache read-only at /nix-cache/, and (with --workers) workers.
func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runServeWith(ctx, args, getenv, stdout, stderr, serveHooks{})
}

// serveHooks let tests replace parts of the farm; the command passes none.
type serveHooks struct {
	// process replaces the pipeline as the pool's processor.
	process pipeline.Processor
	// listening is told the address served on, once it listens.
	listening func(net.Addr)
}

func runServeWith(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, hooks serveHooks) error {
	cfg, level, err := config.Load(args, getenv, stdout, stderr)
	if err != nil {
		return err
	}
	log := cli.Logger(stderr, level)
	f, err := farm.Open(ctx, cfg, farm.Options{Log: log, Getenv: getenv, Process: hooks.process})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer f.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if hooks.listening != nil {
		hooks.listening(ln.Addr())
	}
	return f.Run(ctx, ln)
}
