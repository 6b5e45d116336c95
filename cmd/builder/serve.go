package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/cacheurl"
	"github.com/homelab-farm/farm/internal/cli"
	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/httpserve"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/queue/postgres"
	"github.com/homelab-farm/farm/internal/queue/sqlite"
	"github.com/homelab-farm/farm/internal/server"
	"github.com/homelab-farm/farm/internal/state"
)

// Log attribute keys, shared by everything serve logs.
const (
	logAddr     = "addr"
	logErr      = "err"
	logJob      = "job"
	logRepo     = "repo"
	logCommit   = "commit"
	logForge    = "forge"
	logDelivery = "delivery"
	logStatus   = "status"
	logWorker   = "worker"
	logAttempt  = "attempt"
	logPath     = "path"
	logWorkers  = "workers"
	logReason   = "reason"
	logRef      = "ref"
	logCreated  = "created"
	logReplay   = "replay"
	logNext     = "next"
	logRunAfter = "run_after"
)

// drainTimeout bounds the graceful shutdown of the HTTP server and workers.
const drainTimeout = 10 * time.Second

// runServe runs the farm: webhooks in, the durable queue, the API, the
// binary cache read-only at /nix-cache/, and (with --workers) workers.
func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runServeWith(ctx, args, getenv, stdout, stderr, serveHooks{})
}

// serveHooks let tests replace parts of the farm; the command passes none.
type serveHooks struct {
	// process replaces the pipeline as the pool's processor.
	process pipeline.Processor
}

func runServeWith(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, hooks serveHooks) error {
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
	workers := fs.Int("workers", 1, "evaluation workers")
	lease := fs.Duration("lease", 0, "job lease without heartbeat (default from config, 5m)")
	var ff farmFlags
	ff.register(fs)
	var limits server.Limits
	registerLimits(fs, &limits)
	level := fs.LogLevel()
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := fs.NoArgs(); err != nil {
		return err
	}
	log := cli.Logger(stderr, level)

	cfg := config.Default()
	if *configFile != "" {
		c, err := config.Load(*configFile)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
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
	if err := checkDeploySigner(cfg.DeployKeyFile, ff.deploySigner); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if ff.manifestTTL < time.Minute {
		return fmt.Errorf("serve: --manifest-ttl %v: want at least a minute", ff.manifestTTL)
	}
	if *lease > 0 {
		cfg.Queue.Lease.Duration = *lease
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if err := limits.Validate(cfg.MaxBodyBytes); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return fmt.Errorf("serve: state directory: %w", err)
	}
	if cfg.Cache == "" {
		cfg.Cache = "file://" + filepath.Join(mustAbs(cfg.StateDir), "cache")
	}

	q, err := openQueue(ctx, cfg)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer q.Close()

	backend, err := cacheurl.Open(ctx, cfg.Cache, getenv)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	clients, err := statusClients(cfg, nil, log)
	if err != nil {
		ln.Close()
		return fmt.Errorf("serve: %w", err)
	}
	f, err := newFarm(ctx, cfg, q, backend, clients, ff, log)
	if err != nil {
		ln.Close()
		return fmt.Errorf("serve: %w", err)
	}
	defer f.state.Close()
	process := pipeline.Processor(f.pipeline.Process)
	if hooks.process != nil {
		process = hooks.process
	}
	wake := make(chan struct{}, 1)
	srv := server.New(server.Deps{
		Config: cfg, Jobs: q, State: f.state, Reports: f.state, Manifests: f.pipeline, Cache: backend,
		Metrics: f.metrics.Handler(), Events: f, AdminToken: f.adminToken, Agents: f.agentTokens,
		LogDir: f.pipeline.LogDir, Limits: limits, Log: log,
		OnQueued: func(queue.EnqueueResult) {
			select {
			case wake <- struct{}{}:
			default:
			}
		},
	})
	return serve(ctx, ln, srv.Handler(), f, q, &pipeline.Pool{Queue: q, Workers: *workers, Lease: cfg.Queue.Lease.Duration,
		Process: process, Log: log, Statuses: f.pipeline.Statuses, Wake: wake})
}

// serve runs s on ln and the worker pool until ctx ends, then drains the
// HTTP server and then the workers, each bounded by drainTimeout.
func serve(ctx context.Context, ln net.Listener, h http.Handler, f *farm, q queue.Queue, pool *pipeline.Pool) error {
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	var wg sync.WaitGroup
	wg.Go(func() { pool.Run(workCtx) })
	wg.Go(func() { pruneDeliveries(workCtx, q, f.log) })
	wg.Go(func() { f.writeEvents(workCtx) })
	wg.Go(func() { reloadOnHangup(workCtx, f.agentTokens) })

	f.log.Info("listening", logAddr, ln.Addr().String(), logWorkers, pool.Workers)
	serveErr := httpserve.Serve(ctx, ln, h, httpserve.Options{
		ReadTimeout: 60 * time.Second, WriteTimeout: 60 * time.Second, Drain: drainTimeout, Log: f.log,
	})
	drainCtx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	// Workers stop claiming; a job in progress is released back to the queue.
	stopWork()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-drainCtx.Done():
		f.log.Warn("workers did not stop within the drain timeout")
	}
	f.log.Info("stopped")
	return serveErr
}

func openQueue(ctx context.Context, cfg *config.Config) (queue.Queue, error) {
	opts := queue.Options{MaxAttempts: cfg.Queue.MaxAttempts}
	u := cfg.Queue.URL
	switch {
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		return postgres.Open(ctx, u, opts)
	case u == "", u == "sqlite:":
		return sqlite.Open(ctx, filepath.Join(cfg.StateDir, "queue.db"), opts)
	case strings.HasPrefix(u, "sqlite:"):
		return sqlite.Open(ctx, strings.TrimPrefix(u, "sqlite:"), opts)
	}
	return nil, fmt.Errorf("queue URL: want sqlite:[PATH] or postgres://…")
}

// openState opens the state: in the PostgreSQL database when one is
// configured (carrying over the deploy sequence of a state.db left in the
// state directory), else in the SQLite file state.db there.
func openState(ctx context.Context, cfg *config.Config, log *slog.Logger) (*state.Store, error) {
	file := filepath.Join(cfg.StateDir, "state.db")
	if !config.IsPostgresURL(cfg.Database) {
		return state.Open(ctx, file)
	}
	st, err := state.OpenPostgres(ctx, cfg.Database, log)
	if err != nil {
		return nil, err
	}
	seq, err := state.CarrySeq(ctx, st, file)
	if err != nil {
		st.Close()
		return nil, err
	}
	if seq > 0 {
		log.Info("deploy sequence kept above the SQLite state's", logPath, file, "seq", seq)
	}
	return st, nil
}

func mustAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// cacheHandler serves the cache read-only under /nix-cache/.
func cacheHandler(b cache.Backend, stall time.Duration) http.Handler {
	return http.StripPrefix("/nix-cache", cache.NewHandlerWith(b, cache.HandlerOptions{StallTimeout: stall}))
}

// deliveryRetention is how long webhook delivery ids are remembered for
// replay detection: forges redeliver within hours.
const deliveryRetention = 30 * 24 * time.Hour

// pruneDeliveries forgets old delivery ids once a day until ctx ends.
func pruneDeliveries(ctx context.Context, q queue.Queue, log *slog.Logger) {
	t := time.NewTicker(24 * time.Hour)
	defer t.Stop()
	for {
		if n, err := q.PruneDeliveries(ctx, time.Now().Add(-deliveryRetention)); err != nil && ctx.Err() == nil {
			log.Warn("prune webhook deliveries", logErr, err)
		} else if n > 0 {
			log.Info("pruned webhook deliveries", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reloadOnHangup reloads the agent tokens on every SIGHUP until ctx ends.
func reloadOnHangup(ctx context.Context, tokens *server.AgentTokens) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			tokens.Load()
		}
	}
}
