package main

import (
	"context"
	"io"
	"time"

	"github.com/homelab-farm/farm/internal/cli"
	"github.com/homelab-farm/farm/internal/farm"
	"github.com/homelab-farm/farm/internal/farm/farmtest"
)

func main() { cli.Main("holdbuilder", run) }

// run takes --hold DURATION first, then the flags of `builder serve`.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 || args[0] != "--hold" {
		return cli.Usagef("usage: holdbuilder --hold DURATION [builder serve flags]")
	}
	hold, err := time.ParseDuration(args[1])
	if err != nil || hold <= 0 {
		return cli.Usagef("--hold %q: want a positive duration", args[1])
	}
	return farm.Serve(ctx, args[2:], getenv, stdout, stderr, farm.ServeOptions{Process: farmtest.HoldJobs(hold)})
}
