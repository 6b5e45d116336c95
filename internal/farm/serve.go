package farm

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/homelab-farm/farm/internal/cli"
	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/pipeline"
)

// ServeOptions are what a program running the farm may replace; the
// builder command replaces nothing.
type ServeOptions struct {
	// Process replaces the pipeline as the pool's processor.
	Process pipeline.Processor
	// Listening is told the address served on, once it listens.
	Listening func(net.Addr)
}

// Serve is `builder serve`: it loads the configuration (args, getenv and
// the TOML file they name), opens the farm, listens on the configured
// address and runs until ctx ends.
func Serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, o ServeOptions) error {
	cfg, level, err := config.Load(args, getenv, stdout, stderr)
	if err != nil {
		return err
	}
	f, err := Open(ctx, cfg, Options{Log: cli.Logger(stderr, level), Getenv: getenv, Process: o.Process})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer f.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if o.Listening != nil {
		o.Listening(ln.Addr())
	}
	return f.Run(ctx, ln)
}
