// Command agent runs on every host of the fleet: it asks the builder for the
// host's signed deploy manifest on start, on a timer, when the notifier pokes
// it and after a resume from sleep; it applies a valid, newer manifest
// (realise from the farm's cache, set the system profile,
// switch-to-configuration, health checks, roll back to exactly the previous
// system on failure) and reports the outcome to the builder. A switch happens
// only in the host's maintenance window (--window); outside it the closure is
// installed for the next boot (--outside-window boot) or waits.
//
//	agent --builder-url URL[,URL…] --host NAME --deploy-public-key-file FILE \
//	      --cache-url URL --cache-public-key KEY [--token-file FILE] …
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/homelab-farm/farm/internal/agent"
	"github.com/homelab-farm/farm/internal/agent/window"
	"github.com/homelab-farm/farm/internal/cli"
	"github.com/homelab-farm/farm/internal/failover"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/httpserve"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/nixkey"
	"github.com/homelab-farm/farm/internal/secretfile"
)

func main() { cli.Main("agent", run) }

// options are the parsed flags.
type options struct {
	builderURLs                                        failover.URLs
	host, tokenFile, deployKeyFile, cacheURL, cacheKey string
	interval, healthTimeout, switchTimeout, clockSkew  time.Duration
	keep                                               int
	switchMode                                         string
	healthChecks                                       []string
	systemdHealth                                      bool
	currentSystem, profile, store, stateDir            string
	listen, pokeTokenFile                              string
	suspendAfterWake                                   bool
	suspendCommand                                     string
	once                                               bool
	window                                             *window.Flags
	logLevel                                           *slog.LevelVar
}

func parseFlags(args []string, getenv func(string) string, stdout, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := cli.NewFlagSet("agent", "AGENT", getenv, stdout, stderr)
	fs.Var(&o.builderURLs, "builder-url", "string", cli.Whole, "comma-separated",
		"the builder's `URL`; repeatable, or comma-separated: several instances of one farm, tried in turn when one fails")
	fs.EnvAlias("builder-url", "AGENT_BUILDER_URL", "", nil)
	fs.StringVar(&o.host, "host", "", "the `name` the farm knows this host by (default the hostname)")
	fs.SecretFileVar(&o.tokenFile, "token-file", "`file` with the host's API token for reports (none: no reports)")
	fs.StringVar(&o.deployKeyFile, "deploy-public-key-file", "", "`file` with the farm's deploy public key(s), one per line")
	fs.DurationVar(&o.clockSkew, "clock-skew", 5*time.Minute, "how far this host's clock may run ahead of the builder's: a manifest counts as expired this long after its expiry")
	fs.StringVar(&o.cacheURL, "cache-url", "", "binary cache `URL` to realise from (default the manifest's)")
	fs.StringVar(&o.cacheKey, "cache-public-key", "", "the cache's public `key`, the only one trusted")
	fs.DurationVar(&o.interval, "interval", 24*time.Hour, "time between checks")
	fs.IntVar(&o.keep, "keep-generations", 5, "system profile generations kept")
	fs.StringVar(&o.switchMode, "switch-mode", agent.ModeSwitch, "switch (activate now, when --window allows) or boot (always at next boot only)")
	o.window = window.RegisterFlags(fs)
	fs.StringsVar(&o.healthChecks, "health-check", cli.Lines, "one per line", "shell `command` that must succeed after a switch; repeatable")
	fs.DurationVar(&o.healthTimeout, "health-timeout", 2*time.Minute, "time each health check may take")
	fs.BoolVar(&o.systemdHealth, "systemd-health", true, "where systemd runs, fail a switch after which units have failed that had not before")
	fs.DurationVar(&o.switchTimeout, "switch-timeout", 10*time.Minute, "time switch-to-configuration may take")
	fs.StringVar(&o.currentSystem, "current-system", "/run/current-system", "`link` to the running system")
	fs.StringVar(&o.profile, "profile", "/nix/var/nix/profiles/system", "system `profile`")
	fs.StringVar(&o.store, "store", "", "Nix store `URL` to realise into, e.g. local?root=/tmp/x (default the system's)")
	fs.StringVar(&o.stateDir, "state-dir", "/var/lib/farm-agent", "`directory` for the last applied manifest")
	fs.StringVar(&o.listen, "listen", "", "`address` to take pokes on, POST /poke (none: no pokes)")
	fs.SecretFileVar(&o.pokeTokenFile, "poke-token-file", "`file` with the token pokes must carry")
	fs.BoolVar(&o.suspendAfterWake, "suspend-after-wake", false, "suspend again after an update a Wake-on-LAN started")
	fs.StringVar(&o.suspendCommand, "suspend-command", "systemctl suspend", "`command` that suspends the host")
	fs.BoolVar(&o.once, "once", false, "check once and exit; non-zero unless up to date, switched, installed for boot or waiting for the window")
	o.logLevel = fs.LogLevel()
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := fs.NoArgs(); err != nil {
		return nil, err
	}
	if o.interval <= 0 {
		return nil, fmt.Errorf("--interval %v: want a positive duration", o.interval)
	}
	if o.host == "" {
		o.host, _ = os.Hostname()
	}
	return o, nil
}

// run parses the flags, wires the agent and runs it until ctx is done (or
// once, with --once).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, getenv, stdout, stderr)
	if err != nil {
		return err
	}
	log := cli.Logger(stderr, o.logLevel)

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
		switch out.Result {
		case farmapi.ResultSwitched, farmapi.ResultUpToDate, farmapi.ResultInstalled, farmapi.ResultWaiting:
			return nil
		}
		return fmt.Errorf("%s: %s", out.Result, out.Reason)
	}

	pokes := make(chan agent.Poke, 1)
	if o.listen != "" {
		token, err := secretfile.Read(o.pokeTokenFile, "poke token")
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
	policy, err := o.window.Policy()
	if err != nil {
		return agent.Config{}, err
	}
	cfg := agent.Config{
		Host: o.host, BuilderURLs: o.builderURLs, CacheURL: o.cacheURL, CacheKey: strings.TrimSpace(o.cacheKey),
		SwitchMode: o.switchMode, HealthChecks: o.healthChecks, HealthTimeout: o.healthTimeout,
		SystemdHealth: o.systemdHealth && systemdRuns(), KeepGenerations: o.keep, CurrentSystem: o.currentSystem,
		Profile: o.profile, Store: o.store, StateDir: o.stateDir, SwitchTimeout: o.switchTimeout,
		ClockSkew: o.clockSkew, Window: policy,
	}
	if o.tokenFile != "" {
		tok, err := secretfile.Read(o.tokenFile, "token")
		if err != nil {
			return cfg, err
		}
		cfg.Token = tok
	}
	if o.deployKeyFile == "" {
		return cfg, errors.New("--deploy-public-key-file is required: the agent applies only signed manifests")
	}
	keys, err := nixkey.LoadPublicKeys(o.deployKeyFile)
	if err != nil {
		return cfg, fmt.Errorf("deploy %w", err)
	}
	cfg.DeployKeys = keys
	return cfg, nil
}

// systemdRuns reports whether systemd is the init system here.
func systemdRuns() bool {
	_, err := os.Stat("/run/systemd/system")
	return err == nil
}
