// Command builder is the farm's server and tool: it takes forge webhooks,
// evaluates and builds the fleet, pushes closures to the signed binary cache
// and serves that cache, its API and its dashboard.
//
//	builder serve --config FILE           run the farm
//	builder cache push --cache URL PATH…  push store paths and their closure
//	builder cache verify --cache URL      check a whole cache
//	builder cache serve --cache URL       serve a cache read-only over HTTP
//	builder cache gc --cache URL          delete what the fleet no longer needs
//	builder signer --socket PATH --deploy-key-file FILE
//	                                      sign deploy manifests for serve
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/homelab-farm/farm/internal/cli"
)

func main() { cli.Main("builder", run) }

const usage = `usage: builder <command> [flags]

commands:
  serve         run the farm: webhooks, queue, builds, cache, API
  cache push    push store paths and their closures to a binary cache
  cache verify  check every narinfo, signature and NAR of a cache
  cache serve   serve a cache read-only over HTTP at /nix-cache/
  cache gc      delete from a cache what no host, recent build or pin needs
  signer        sign deploy manifests on a unix socket (serve --deploy-signer)
  rollback      roll the fleet back to an earlier commit's closures, wave by wave
`

// run dispatches to a subcommand. getenv supplies every flag's environment
// fallback so tests can run commands without touching the process environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return cli.ErrUsage
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], getenv, stdout, stderr)
	case "cache":
		return runCache(ctx, args[1:], getenv, stdout, stderr)
	case "signer":
		return runSigner(ctx, args[1:], getenv, stdout, stderr)
	case "rollback":
		return runRollback(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return cli.Usagef("unknown command %q", args[0])
	}
}
