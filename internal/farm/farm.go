package farm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/homelab-farm/farm/internal/cache/cacheurl"
	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/deploy/signer"
	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/git"
	"github.com/homelab-farm/farm/internal/httpserve"
	"github.com/homelab-farm/farm/internal/metrics"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/nixkey"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/safepath"
	"github.com/homelab-farm/farm/internal/secretfile"
	"github.com/homelab-farm/farm/internal/server"
	"github.com/homelab-farm/farm/internal/state"
)

// Options are what Open takes besides the configuration.
type Options struct {
	Log *slog.Logger // nil: discarded
	// Getenv supplies the environment fallbacks of the cache URL's
	// credentials (nil: os.Getenv).
	Getenv func(string) string
	// Process replaces the pipeline as the worker pool's processor; tests
	// of claims, leases and shutdown hold jobs with it. nil: the pipeline.
	Process pipeline.Processor
	// StatusHTTP is the client of commit status calls; nil: a retrying one.
	StatusHTTP *http.Client
}

// Farm is a builder: the queue, the state, the binary cache, the keys, the
// pipeline with its worker pool, and the HTTP server over all of them.
type Farm struct {
	cfg         *config.Config
	log         *slog.Logger
	queue       queue.Queue
	state       *state.Store
	pipeline    *pipeline.Pipeline
	metrics     *metrics.Metrics
	agentTokens *server.AgentTokens
	server      *server.Server
	pool        *pipeline.Pool
	events      *eventWriter
}

// Open wires the farm of cfg (checked with cfg.Validate first): it makes
// the state directory, opens the queue, the state and the cache, loads or
// makes the keys (their public halves are logged), reads the admin and
// agent tokens and the forge tokens, and assembles the pipeline, its pool
// and the server. Nothing runs until Run; Close releases what Open opened.
func Open(ctx context.Context, cfg *config.Config, opts Options) (f *Farm, err error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if cfg.Cache == "" {
		cfg.Cache = "file://" + filepath.Join(mustAbs(cfg.StateDir), "cache")
	}
	var closers []func() error
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				_ = closers[i]()
			}
		}
	}()
	q, err := openQueue(ctx, cfg)
	if err != nil {
		return nil, err
	}
	closers = append(closers, q.Close)
	backend, err := cacheurl.Open(ctx, cfg.Cache, getenv)
	if err != nil {
		return nil, err
	}
	clients, err := statusClients(cfg, opts.StatusHTTP, log)
	if err != nil {
		return nil, err
	}
	st, err := openState(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	closers = append(closers, st.Close)
	cacheKey, err := loadOrCreateKey(cfg.SigningKeyFile, filepath.Join(cfg.StateDir, "cache-signing.key"), "farm-cache-1", log)
	if err != nil {
		return nil, fmt.Errorf("cache signing key: %w", err)
	}
	deploySigner, err := newDeploySigner(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	var admin []byte
	if cfg.Serve.AdminTokenFile != "" {
		token, err := secretfile.Read(cfg.Serve.AdminTokenFile, "admin token")
		if err != nil {
			return nil, err
		}
		admin = []byte(token)
	}
	publicURL := strings.TrimSuffix(cfg.PublicURL, "/")
	if publicURL == "" {
		publicURL = "http://" + cfg.Listen
	}
	cacheURL := cfg.Serve.CachePublicURL
	if cacheURL == "" {
		cacheURL = publicURL + "/nix-cache"
	}
	m := metrics.New(q)
	mirrors := filepath.Join(cfg.StateDir, "mirrors")
	p := &pipeline.Pipeline{
		State: st, Nix: &nix.Client{StoreDB: nix.DefaultStoreDB},
		Mirrors: func(repo string) *git.Mirror { return mirrorOf(mirrors, repo) },
		Cache:   backend, CacheKey: cacheKey, Signer: deploySigner, CacheURL: cacheURL,
		FlakeDir: cfg.Serve.FlakeDir, Builders: cfg.Serve.Builders, MaxSilent: cfg.Serve.MaxSilent, BuildTimeout: cfg.Serve.BuildTimeout,
		EvalOptions: nix.EvalOptions{MemoryBudget: cfg.Serve.EvalMemory}, ManifestTTL: cfg.Serve.ManifestTTL,
		LogDir:    filepath.Join(cfg.StateDir, "logs"),
		GCRootDir: filepath.Join(mustAbs(cfg.StateDir), "gcroots"),
		Log:       log, Metrics: m,
	}
	p.CloneURLs = func(job queue.Job) []string {
		came, others := cloneURLs(cfg, job)
		return append(came, others...)
	}
	p.SyncRemotes = func(job queue.Job) []string {
		for _, r := range cfg.Repositories {
			if r.Name == job.Repo && r.SyncRemotes {
				came, others := cloneURLs(cfg, job)
				return append(came, others...)
			}
		}
		return nil
	}
	if len(clients) > 0 {
		p.Statuses = &pipeline.Statuses{For: pipeline.ByURL(clients), Context: cfg.Statuses.Context,
			Limit: cfg.Statuses.PerHostLimit, PublicURL: publicURL, Log: log}
	}
	f = &Farm{cfg: cfg, log: log, queue: q, state: st, pipeline: p, metrics: m,
		agentTokens: server.NewAgentTokens(cfg.Serve.AgentTokensDir, log), events: newEventWriter(st, log)}
	process := opts.Process
	if process == nil {
		process = p.Process
	}
	wake := make(chan struct{}, 1)
	f.pool = &pipeline.Pool{Queue: q, Workers: cfg.Serve.Workers, Lease: cfg.Queue.Lease.Duration,
		Process: process, Log: log, Statuses: p.Statuses, Wake: wake}
	f.server = server.New(server.Deps{
		Config: cfg, Jobs: q, State: st, Reports: st, Manifests: p, Cache: backend,
		Metrics: m.Handler(), Events: f.events, AdminToken: admin, Agents: f.agentTokens,
		LogDir: p.LogDir, Log: log,
		Limits: server.Limits{WebhookBudget: cfg.Serve.WebhookBudget, MaxStreams: cfg.Serve.MaxStreams, StallTimeout: cfg.Serve.StallTimeout},
		OnQueued: func(queue.EnqueueResult) {
			select {
			case wake <- struct{}{}:
			default:
			}
		},
	})
	return f, nil
}

// Handler is the farm's HTTP surface (internal/server).
func (f *Farm) Handler() http.Handler { return f.server.Handler() }

// Close closes the state and the queue; call it after Run returned.
func (f *Farm) Close() error {
	return errors.Join(f.state.Close(), f.queue.Close())
}

// DrainTimeout bounds the graceful shutdown of the HTTP server and of the
// workers.
const DrainTimeout = 10 * time.Second

// Run serves the farm on ln and runs its workers, the event writer, the
// daily pruning of webhook delivery ids and the reload of agent tokens on
// SIGHUP until ctx ends; then it drains the HTTP server and then the
// workers (a job in progress is released back to the queue), each bounded
// by DrainTimeout, and returns once every goroutine it started stopped
// (or the drain timed out, which is logged).
func (f *Farm) Run(ctx context.Context, ln net.Listener) error {
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	var wg sync.WaitGroup
	wg.Go(func() { f.pool.Run(workCtx) })
	wg.Go(func() { pruneDeliveries(workCtx, f.queue, f.log) })
	wg.Go(func() { f.events.run(workCtx) })
	wg.Go(func() { reloadOnHangup(workCtx, f.agentTokens) })

	f.log.Info("listening", logAddr, ln.Addr().String(), logWorkers, f.pool.Workers)
	serveErr := httpserve.Serve(ctx, ln, f.server.Handler(), httpserve.Options{
		ReadTimeout: 60 * time.Second, WriteTimeout: 60 * time.Second, Drain: DrainTimeout, Log: f.log,
	})
	drainCtx, cancel := context.WithTimeout(context.Background(), DrainTimeout)
	defer cancel()
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

// newDeploySigner returns what signs deploy manifests: the signer at
// signerAddr, or a key held in this process.
func newDeploySigner(ctx context.Context, cfg *config.Config, log *slog.Logger) (deploy.Signer, error) {
	signerAddr := cfg.Serve.DeploySigner
	if signerAddr != "" {
		c := &signer.Client{Socket: strings.TrimPrefix(signerAddr, "unix:")}
		// Not fatal: until the signer answers, deploy steps fail and are
		// retried.
		if k, err := c.PublicKey(ctx); err != nil {
			log.Warn("deploy signer not reachable yet; deploys wait for it", "signer", signerAddr, logErr, err)
		} else {
			log.Info("deploy manifests signed by the signer", "signer", signerAddr, "public_key", k.String())
		}
		return c, nil
	}
	key, err := loadOrCreateKey(cfg.DeployKeyFile, filepath.Join(cfg.StateDir, "deploy-signing.key"), "farm-deploy-1", log)
	if err != nil {
		return nil, fmt.Errorf("deploy key: %w", err)
	}
	return deploy.KeySigner{Key: key}, nil
}

// mirrorOf is repo's mirror under root. A repository name that is not one
// plain path element gets a mirror without a directory, which refuses
// every operation.
func mirrorOf(root, repo string) *git.Mirror {
	dir, err := safepath.Join(root, repo)
	if err != nil {
		return &git.Mirror{}
	}
	return &git.Mirror{Dir: dir + ".git"}
}

// loadOrCreateKey reads the key in file, or (no file configured) the one in
// fallback, making it first if it does not exist yet. A key file its group
// or others can read is refused (nixkey.ErrKeyExposed).
func loadOrCreateKey(file, fallback, name string, log *slog.Logger) (nixkey.SecretKey, error) {
	if file != "" {
		return nixkey.Load(file)
	}
	k, created, err := nixkey.LoadOrCreate(fallback, name)
	if err != nil {
		return nixkey.SecretKey{}, err
	}
	if created {
		log.Info("made a new key in the state directory", "file", fallback, "public_key", k.Public().String())
	} else {
		log.Info("using key from the state directory", "file", fallback, "public_key", k.Public().String())
	}
	return k, nil
}

// cloneURLs returns where a job's commit can be fetched: the remotes it
// arrived from, and the repository's other remotes.
func cloneURLs(cfg *config.Config, job queue.Job) (first, rest []string) {
	var repo *config.Repository
	for i := range cfg.Repositories {
		if cfg.Repositories[i].Name == job.Repo {
			repo = &cfg.Repositories[i]
		}
	}
	arrived := map[string]bool{}
	for _, r := range job.Remotes {
		arrived[forge.NormalizeURL(r.URL)] = true
	}
	if repo != nil {
		for _, m := range repo.Remotes {
			u := m.CloneURL
			if u == "" {
				u = m.URL
			}
			if arrived[forge.NormalizeURL(m.URL)] {
				first = append(first, u)
			} else {
				rest = append(rest, u)
			}
		}
	}
	if len(first) == 0 {
		for _, r := range job.Remotes {
			first = append(first, r.URL)
		}
	}
	return first, rest
}
