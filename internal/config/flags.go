package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"

	"github.com/homelab-farm/farm/internal/cli"
)

// Load is the configuration of `builder serve` args: the TOML file named
// by --config (else the defaults), with the environment (BUILDER_*, each
// flag's fallback) and the flags over it, checked with Validate; and the
// log level (--log-level). It returns the flag set's errors as they are
// (cli.ErrUsage, flag.ErrHelp, cli.ErrDone after -flags-json), a file's
// mistakes as *Error, and the rest prefixed "serve: ".
func Load(args []string, getenv func(string) string, stdout, stderr io.Writer) (*Config, slog.Leveler, error) {
	fs := cli.NewFlagSet("builder serve", "BUILDER", getenv, stdout, stderr)
	configFile := fs.String("config", "", "TOML configuration `file`; see examples/builder.toml")
	listen := fs.String("listen", "", "`address` to serve HTTP on (default 127.0.0.1:8080)")
	stateDir := fs.String("state-dir", "", "`directory` for the queue and the default cache")
	cacheURL := fs.String("cache", "", "binary cache `URL` (default file://<state-dir>/cache)")
	queueURL := fs.String("queue", "", "queue `URL`: sqlite:[PATH] or postgres://…")
	database := fs.String("database", "",
		"database `URL` for the queue and the state: sqlite: (files in the state directory) or postgres://…, shared by several builders")
	signingKeyFile := fs.SecretFile("signing-key-file", "`file` with the cache signing key")
	deployKeyFile := fs.SecretFile("deploy-key-file", "`file` with the deploy manifest key")
	serve := DefaultServe()
	fs.IntVar(&serve.Workers, "workers", serve.Workers, "evaluation workers")
	lease := fs.Duration("lease", 0, "job lease without heartbeat (default from config, 5m)")
	serve.register(fs)
	level := fs.LogLevel()
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if err := fs.NoArgs(); err != nil {
		return nil, nil, err
	}

	cfg := Default()
	if *configFile != "" {
		c, err := LoadFile(*configFile)
		if err != nil {
			return nil, nil, fmt.Errorf("serve: %w", err)
		}
		cfg = c
	}
	override := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	override(&cfg.Listen, *listen)
	override(&cfg.StateDir, *stateDir)
	override(&cfg.Cache, *cacheURL)
	override(&cfg.Queue.URL, *queueURL)
	override(&cfg.Database, *database)
	override(&cfg.SigningKeyFile, *signingKeyFile)
	override(&cfg.DeployKeyFile, *deployKeyFile)
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8080"
	}
	if *lease > 0 {
		cfg.Queue.Lease.Duration = *lease
	}
	cfg.Serve = serve
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("serve: %w", err)
	}
	return cfg, level, nil
}

// register registers the flags of the pipeline, its API, its keys and its
// limits, with s's values as defaults.
func (s *Serve) register(fs *cli.FlagSet) {
	fs.SecretFileVar(&s.AdminTokenFile, "admin-token-file",
		"`file` with the token for POST /api/evaluations (none: manual triggers refused)")
	fs.SecretFileVar(&s.AgentTokensDir, "agent-tokens-dir",
		"`directory` with one file per host holding its agent's report token")
	fs.StringVar(&s.FlakeDir, "flake-dir", s.FlakeDir,
		"`directory` of the fleet flake inside the repository")
	fs.StringVar(&s.Builders, "builders", s.Builders,
		"Nix remote `builders` (\"ssh-ng://mac aarch64-darwin\"); empty: Nix's own setting")
	fs.DurationVar(&s.MaxSilent, "max-silent-time", s.MaxSilent,
		"fail a build silent this long")
	fs.DurationVar(&s.BuildTimeout, "build-timeout", s.BuildTimeout,
		"fail a build running this long")
	fs.SizeVar(&s.EvalMemory, "eval-memory", s.EvalMemory,
		"memory budget of one host's evaluation: bytes, or with a unit (4GiB); 0: a quarter of free memory, 2-4 GiB")
	fs.EnvAlias("eval-memory", "BUILDER_EVAL_MEMORY_MB", "MiB", func(v string) (string, error) {
		if _, err := strconv.ParseUint(v, 10, 32); err != nil {
			return "", errors.New("want a whole number of MiB")
		}
		return v + "MiB", nil
	})
	fs.DurationVar(&s.ManifestTTL, "manifest-ttl", s.ManifestTTL,
		"how long a deploy manifest is valid; a host's current one is renewed when served with less than half left")
	fs.StringVar(&s.DeploySigner, "deploy-signer", s.DeploySigner,
		"sign deploy manifests through `builder signer` at unix:`PATH` instead of holding the key (exclusive with --deploy-key-file)")
	fs.StringVar(&s.CachePublicURL, "cache-public-url", s.CachePublicURL,
		"substituter `URL` hosts realise closures from (default <public_url>/nix-cache)")
	fs.SizeVar(&s.WebhookBudget, "webhook-body-budget", s.WebhookBudget,
		"`bytes` of webhook bodies held in memory at once before their signatures are checked, or a size with a unit (64MiB); beyond, 503 (default 32 MiB or max_body_bytes if larger)")
	fs.IntVar(&s.MaxStreams, "max-streams", s.MaxStreams,
		"open /api/events and log-follow streams at once; beyond, 503")
	fs.DurationVar(&s.StallTimeout, "stall-timeout", s.StallTimeout,
		"drop a client when one write to it blocks this `long` (streams, cache downloads, logs)")
}
