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
//	notifier --builder-url URL --state-dir DIR [--ntfy-url URL --ntfy-topic T
//	         --ntfy-token-file FILE] [--config FILE] [--poke-token-file FILE]
//	         [--metrics-listen ADDR]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/homelab-farm/farm/internal/envflag"
	"github.com/homelab-farm/farm/internal/notify"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "notifier: %v\n", err)
		}
		os.Exit(1)
	}
}

// run parses the flags, wires the notifier and runs it until ctx is done.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("notifier", flag.ContinueOnError)
	fs.SetOutput(stderr)
	builderURL := fs.String("builder-url", getenv("NOTIFIER_BUILDER_URL"), "the builder's `URL` (env NOTIFIER_BUILDER_URL)")
	stateDir := fs.String("state-dir", envflag.String(getenv, "NOTIFIER_STATE_DIR", "/var/lib/farm-notifier"), "`directory` for the event cursor (env NOTIFIER_STATE_DIR)")
	ntfyURL := fs.String("ntfy-url", getenv("NOTIFIER_NTFY_URL"), "ntfy server `URL` (env NOTIFIER_NTFY_URL; none: no notifications)")
	ntfyTopic := fs.String("ntfy-topic", getenv("NOTIFIER_NTFY_TOPIC"), "ntfy `topic` (env NOTIFIER_NTFY_TOPIC)")
	ntfyTokenFile := fs.String("ntfy-token-file", getenv("NOTIFIER_NTFY_TOKEN_FILE"), "`file` with the ntfy access token (env NOTIFIER_NTFY_TOKEN_FILE)")
	configFile := fs.String("config", getenv("NOTIFIER_CONFIG"), "TOML configuration `file`: wake_on_lan, agents, public_url (env NOTIFIER_CONFIG)")
	pokeTokenFile := fs.String("poke-token-file", getenv("NOTIFIER_POKE_TOKEN_FILE"), "`file` with the token agents take pokes with (env NOTIFIER_POKE_TOKEN_FILE; none: no pokes)")
	metricsListen := fs.String("metrics-listen", getenv("NOTIFIER_METRICS_LISTEN"), "`address` to serve Prometheus metrics on, GET /metrics (env NOTIFIER_METRICS_LISTEN; none: not served)")
	logLevel := fs.String("log-level", envflag.String(getenv, "NOTIFIER_LOG_LEVEL", "info"), "debug, info, warn or error (env NOTIFIER_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	if u, err := url.Parse(*builderURL); *builderURL == "" || err != nil || u.Host == "" {
		return fmt.Errorf("--builder-url %q: want an absolute URL", *builderURL)
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
			if token, err = envflag.ReadSecret(*ntfyTokenFile, "ntfy token"); err != nil {
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
		if pokeToken, err = envflag.ReadSecret(*pokeTokenFile, "poke token"); err != nil {
			return err
		}
	}
	m := newMetrics()
	n, err := notify.New(notify.Options{
		Config: cfg, BuilderURL: *builderURL, StateDir: *stateDir,
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
