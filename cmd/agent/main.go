// Command agent runs on every host of the fleet: it asks the builder for the
// host's signed deploy manifest on start, on a timer, when the notifier pokes
// it and after a resume from sleep; it applies a valid, newer manifest
// (realise from the farm's cache, set the system profile,
// switch-to-configuration, health checks, roll back to exactly the previous
// system on failure) and reports the outcome to the builder.
//
//	agent --builder-url URL --host NAME --deploy-public-key-file FILE \
//	      --cache-url URL --cache-public-key KEY [--token-file FILE] …
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/homelab-farm/farm/internal/agent"
	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/envflag"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/httpserve"
	"github.com/homelab-farm/farm/internal/nix"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "agent: %v\n", err)
		}
		os.Exit(1)
	}
}

// options are the parsed flags.
type options struct {
	builderURL, host, tokenFile, deployKeyFile, cacheURL, cacheKey string
	interval, healthTimeout, switchTimeout, clockSkew              time.Duration
	keep                                                           int
	switchMode                                                     string
	healthChecks                                                   envflag.Multi
	systemdHealth                                                  bool
	currentSystem, profile, store, stateDir                        string
	listen, pokeTokenFile                                          string
	suspendAfterWake                                               bool
	suspendCommand                                                 string
	once                                                           bool
	logLevel                                                       string
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hostname, _ := os.Hostname()
	fs.StringVar(&o.builderURL, "builder-url", getenv("AGENT_BUILDER_URL"), "the builder's `URL` (env AGENT_BUILDER_URL)")
	fs.StringVar(&o.host, "host", envflag.String(getenv, "AGENT_HOST", hostname), "the `name` the farm knows this host by (env AGENT_HOST; default the hostname)")
	fs.StringVar(&o.tokenFile, "token-file", getenv("AGENT_TOKEN_FILE"), "`file` with the host's API token for reports (env AGENT_TOKEN_FILE; none: no reports)")
	fs.StringVar(&o.deployKeyFile, "deploy-public-key-file", getenv("AGENT_DEPLOY_PUBLIC_KEY_FILE"), "`file` with the farm's deploy public key(s), one per line (env AGENT_DEPLOY_PUBLIC_KEY_FILE)")
	fs.DurationVar(&o.clockSkew, "clock-skew", envflag.Duration(getenv, "AGENT_CLOCK_SKEW", 5*time.Minute), "how far this host's clock may run ahead of the builder's: a manifest counts as expired this long after its expiry (env AGENT_CLOCK_SKEW)")
	fs.StringVar(&o.cacheURL, "cache-url", getenv("AGENT_CACHE_URL"), "binary cache `URL` to realise from (env AGENT_CACHE_URL; default the manifest's)")
	fs.StringVar(&o.cacheKey, "cache-public-key", getenv("AGENT_CACHE_PUBLIC_KEY"), "the cache's public `key`, the only one trusted (env AGENT_CACHE_PUBLIC_KEY)")
	fs.DurationVar(&o.interval, "interval", envflag.Duration(getenv, "AGENT_INTERVAL", 24*time.Hour), "time between checks (env AGENT_INTERVAL)")
	fs.IntVar(&o.keep, "keep-generations", envflag.Int(getenv, "AGENT_KEEP_GENERATIONS", 5), "system profile generations kept (env AGENT_KEEP_GENERATIONS)")
	fs.StringVar(&o.switchMode, "switch-mode", envflag.String(getenv, "AGENT_SWITCH_MODE", agent.ModeSwitch), "switch (activate now) or boot (at next boot) (env AGENT_SWITCH_MODE)")
	fs.Var(&o.healthChecks, "health-check", "shell `command` that must succeed after a switch; repeatable (env AGENT_HEALTH_CHECKS, one per line)")
	fs.DurationVar(&o.healthTimeout, "health-timeout", envflag.Duration(getenv, "AGENT_HEALTH_TIMEOUT", 2*time.Minute), "time each health check may take (env AGENT_HEALTH_TIMEOUT)")
	fs.BoolVar(&o.systemdHealth, "systemd-health", envflag.Bool(getenv, "AGENT_SYSTEMD_HEALTH", true), "where systemd runs, fail a switch after which units have failed that had not before (env AGENT_SYSTEMD_HEALTH)")
	fs.DurationVar(&o.switchTimeout, "switch-timeout", envflag.Duration(getenv, "AGENT_SWITCH_TIMEOUT", 10*time.Minute), "time switch-to-configuration may take (env AGENT_SWITCH_TIMEOUT)")
	fs.StringVar(&o.currentSystem, "current-system", envflag.String(getenv, "AGENT_CURRENT_SYSTEM", "/run/current-system"), "`link` to the running system (env AGENT_CURRENT_SYSTEM)")
	fs.StringVar(&o.profile, "profile", envflag.String(getenv, "AGENT_PROFILE", "/nix/var/nix/profiles/system"), "system `profile` (env AGENT_PROFILE)")
	fs.StringVar(&o.store, "store", getenv("AGENT_STORE"), "Nix store `URL` to realise into, e.g. local?root=/tmp/x (env AGENT_STORE; default the system's)")
	fs.StringVar(&o.stateDir, "state-dir", envflag.String(getenv, "AGENT_STATE_DIR", "/var/lib/farm-agent"), "`directory` for the last applied manifest (env AGENT_STATE_DIR)")
	fs.StringVar(&o.listen, "listen", getenv("AGENT_LISTEN"), "`address` to take pokes on, POST /poke (env AGENT_LISTEN; none: no pokes)")
	fs.StringVar(&o.pokeTokenFile, "poke-token-file", getenv("AGENT_POKE_TOKEN_FILE"), "`file` with the token pokes must carry (env AGENT_POKE_TOKEN_FILE)")
	fs.BoolVar(&o.suspendAfterWake, "suspend-after-wake", envflag.Bool(getenv, "AGENT_SUSPEND_AFTER_WAKE", false), "suspend again after an update a Wake-on-LAN started (env AGENT_SUSPEND_AFTER_WAKE)")
	fs.StringVar(&o.suspendCommand, "suspend-command", envflag.String(getenv, "AGENT_SUSPEND_COMMAND", "systemctl suspend"), "`command` that suspends the host (env AGENT_SUSPEND_COMMAND)")
	fs.BoolVar(&o.once, "once", envflag.Bool(getenv, "AGENT_ONCE", false), "check once and exit; non-zero unless up to date or switched (env AGENT_ONCE)")
	fs.StringVar(&o.logLevel, "log-level", envflag.String(getenv, "AGENT_LOG_LEVEL", "info"), "debug, info, warn or error (env AGENT_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.interval <= 0 {
		return nil, fmt.Errorf("--interval %v: want a positive duration", o.interval)
	}
	if len(o.healthChecks) == 0 {
		for _, l := range strings.Split(getenv("AGENT_HEALTH_CHECKS"), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				o.healthChecks = append(o.healthChecks, l)
			}
		}
	}
	return o, nil
}

// run parses the flags, wires the agent and runs it until ctx is done (or
// once, with --once).
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	o, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg, err := o.config()
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	a := agent.New(cfg, &nix.Client{}, &http.Client{Timeout: 30 * time.Second}, log)

	if o.once {
		out, err := a.Check(ctx)
		if err != nil {
			return err
		}
		if out.Result != farmapi.ResultSwitched && out.Result != farmapi.ResultUpToDate {
			return fmt.Errorf("%s: %s", out.Result, out.Reason)
		}
		return nil
	}

	pokes := make(chan agent.Poke, 1)
	if o.listen != "" {
		token, err := envflag.ReadSecret(o.pokeTokenFile, "poke token")
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", o.listen)
		if err != nil {
			return fmt.Errorf("listen for pokes: %w", err)
		}
		log.Info("taking pokes", "addr", ln.Addr().String())
		srvCtx, stopSrv := context.WithCancel(ctx)
		srvDone := make(chan struct{})
		go func() {
			defer close(srvDone)
			err := httpserve.Serve(srvCtx, ln, agent.PokeHandler([]byte(token), pokes), httpserve.Options{
				ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, Drain: 5 * time.Second, Log: log,
			})
			if err != nil && srvCtx.Err() == nil {
				log.Error("poke server stopped; checks go on by timer", "err", err)
			}
		}()
		defer func() {
			stopSrv()
			<-srvDone
		}()
	}
	var suspend []string
	if o.suspendAfterWake {
		suspend = strings.Fields(o.suspendCommand)
	}
	return a.Run(ctx, agent.RunOptions{Interval: o.interval, Pokes: pokes, SuspendAfterWake: suspend})
}

// config turns the flags into the agent's configuration, reading the files
// they name.
func (o *options) config() (agent.Config, error) {
	cfg := agent.Config{
		Host: o.host, BuilderURL: o.builderURL, CacheURL: o.cacheURL, CacheKey: strings.TrimSpace(o.cacheKey),
		SwitchMode: o.switchMode, HealthChecks: o.healthChecks, HealthTimeout: o.healthTimeout,
		SystemdHealth: o.systemdHealth && systemdRuns(), KeepGenerations: o.keep, CurrentSystem: o.currentSystem,
		Profile: o.profile, Store: o.store, StateDir: o.stateDir, SwitchTimeout: o.switchTimeout,
		ClockSkew: o.clockSkew,
	}
	if o.tokenFile != "" {
		tok, err := envflag.ReadSecret(o.tokenFile, "token")
		if err != nil {
			return cfg, err
		}
		cfg.Token = tok
	}
	if o.deployKeyFile == "" {
		return cfg, errors.New("--deploy-public-key-file is required: the agent applies only signed manifests")
	}
	b, err := os.ReadFile(o.deployKeyFile)
	if err != nil {
		return cfg, fmt.Errorf("read deploy public key: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, err := cache.ParsePublicKey(l)
		if err != nil {
			return cfg, fmt.Errorf("deploy public key file %s: %w", o.deployKeyFile, err)
		}
		cfg.DeployKeys = append(cfg.DeployKeys, k)
	}
	return cfg, nil
}

// systemdRuns reports whether systemd is the init system here.
func systemdRuns() bool {
	_, err := os.Stat("/run/systemd/system")
	return err == nil
}
