// Command notifier follows the builder's event stream and tells a person
// through ntfy when a build, an evaluation or a deploy fails and when it
// recovers; it pokes agents when their host has a new desired closure and
// wakes sleeping hosts with Wake-on-LAN. Its cursor into the stream is kept
// in --state-dir with the notification in flight, if any; a notifier killed
// (even with SIGKILL) after ntfy took a message and before its state reached
// the disk finds that message again in ntfy's message cache when it restarts.
// So a restart neither misses nor repeats a notification, as long as the
// token may read the topic and the server keeps a cache (ntfy's default);
// where it cannot look, it warns and publishes again (at least once).
//
//	notifier --builder-url URL[,URL…] --state-dir DIR [--ntfy-url URL --ntfy-topic T
//	         --ntfy-token-file FILE] [--config FILE] [--poke-token-file FILE]
//	         [--metrics-listen ADDR]
package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/homelab-farm/farm/internal/cli"
	"github.com/homelab-farm/farm/internal/failover"
	"github.com/homelab-farm/farm/internal/notify"
	"github.com/homelab-farm/farm/internal/secretfile"
)

func main() { cli.Main("notifier", run) }

// run parses the flags, wires the notifier and runs it until ctx is done.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("notifier", "NOTIFIER", getenv, stdout, stderr)
	var builderURLs failover.URLs
	fs.Var(&builderURLs, "builder-url", "string", cli.Whole, "comma-separated",
		"the builder's `URL`; repeatable, or comma-separated: several instances of one farm, followed on the next when one fails")
	fs.EnvAlias("builder-url", "NOTIFIER_BUILDER_URL", "", nil)
	stateDir := fs.String("state-dir", "/var/lib/farm-notifier", "`directory` for the event cursor")
	ntfyURL := fs.String("ntfy-url", "", "ntfy server `URL` (none: no notifications)")
	ntfyTopic := fs.String("ntfy-topic", "", "ntfy `topic`")
	ntfyTokenFile := fs.SecretFile("ntfy-token-file", "`file` with the ntfy access token")
	configFile := fs.String("config", "", "TOML configuration `file`: wake_on_lan, agents, public_url")
	pokeTokenFile := fs.SecretFile("poke-token-file", "`file` with the token agents take pokes with (none: no pokes)")
	metricsListen := fs.String("metrics-listen", "", "`address` to serve Prometheus metrics on, GET /metrics (none: not served)")
	level := fs.LogLevel()
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := fs.NoArgs(); err != nil {
		return err
	}
	log := cli.Logger(stderr, level)

	if _, err := failover.New(builderURLs); err != nil {
		return fmt.Errorf("--builder-url: %w", err)
	}
	cfg, err := notify.LoadConfig(*configFile)
	if err != nil {
		return err
	}
	var pub notify.Publisher
	switch {
	case *ntfyURL != "" && *ntfyTopic != "":
		token := ""
		if *ntfyTokenFile != "" {
			if token, err = secretfile.Read(*ntfyTokenFile, "ntfy token"); err != nil {
				return err
			}
		}
		n, err := notify.NewNtfy(*ntfyURL, *ntfyTopic, notify.NtfyOptions{Token: token, Log: log})
		if err != nil {
			return err
		}
		pub = n
	case *ntfyURL != "" || *ntfyTopic != "":
		return errors.New("--ntfy-url and --ntfy-topic go together")
	default:
		log.Warn("no ntfy server configured: nobody will be told of failures")
	}
	pokeToken := ""
	if *pokeTokenFile != "" {
		if pokeToken, err = secretfile.Read(*pokeTokenFile, "poke token"); err != nil {
			return err
		}
	}
	m := newMetrics()
	n, err := notify.New(notify.Options{
		Config: cfg, BuilderURLs: builderURLs, StateDir: *stateDir,
		Publisher: pub, PokeToken: pokeToken, Metrics: m, Log: log,
	})
	if err != nil {
		return err
	}
	if *metricsListen != "" {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		wait, err := serveMetrics(ctx, *metricsListen, m, log)
		if err != nil {
			return err
		}
		defer wait()
		defer cancel()
	}
	return n.Run(ctx)
}
