package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cli"
	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/deploy/signer"
	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/git"
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

// farmFlags are the serve flags of the pipeline, its API and its keys.
type farmFlags struct {
	adminTokenFile string
	agentTokensDir string
	flakeDir       string
	builders       string
	maxSilent      time.Duration
	buildTimeout   time.Duration
	evalMemory     int64
	cacheURL       string // what hosts substitute from
	manifestTTL    time.Duration
	deploySigner   string // "unix:PATH": sign through `builder signer`
}

func (f *farmFlags) register(fs *cli.FlagSet) {
	fs.SecretFileVar(&f.adminTokenFile, "admin-token-file",
		"`file` with the token for POST /api/evaluations (none: manual triggers refused)")
	fs.SecretFileVar(&f.agentTokensDir, "agent-tokens-dir",
		"`directory` with one file per host holding its agent's report token")
	fs.StringVar(&f.flakeDir, "flake-dir", "nix",
		"`directory` of the fleet flake inside the repository")
	fs.StringVar(&f.builders, "builders", "",
		"Nix remote `builders` (\"ssh-ng://mac aarch64-darwin\"); empty: Nix's own setting")
	fs.DurationVar(&f.maxSilent, "max-silent-time", 30*time.Minute,
		"fail a build silent this long")
	fs.DurationVar(&f.buildTimeout, "build-timeout", 4*time.Hour,
		"fail a build running this long")
	fs.SizeVar(&f.evalMemory, "eval-memory", 0,
		"memory budget of one host's evaluation: bytes, or with a unit (4GiB); 0: a quarter of free memory, 2-4 GiB")
	fs.EnvAlias("eval-memory", "BUILDER_EVAL_MEMORY_MB", "MiB", func(v string) (string, error) {
		if _, err := strconv.ParseUint(v, 10, 32); err != nil {
			return "", errors.New("want a whole number of MiB")
		}
		return v + "MiB", nil
	})
	fs.DurationVar(&f.manifestTTL, "manifest-ttl", pipeline.DefaultManifestTTL,
		"how long a deploy manifest is valid; a host's current one is renewed when served with less than half left")
	fs.StringVar(&f.deploySigner, "deploy-signer", "",
		"sign deploy manifests through `builder signer` at unix:`PATH` instead of holding the key (exclusive with --deploy-key-file)")
	fs.StringVar(&f.cacheURL, "cache-public-url", "",
		"substituter `URL` hosts realise closures from (default <public_url>/nix-cache)")
}

// farm is the pipeline with what serves its results.
type farm struct {
	state    *state.Store
	pipeline *pipeline.Pipeline
	metrics  *metrics.Metrics
	// adminToken guards manual triggers (nil: refused); agentTokens are
	// the agents' report tokens, reloaded on SIGHUP.
	adminToken  []byte
	agentTokens *server.AgentTokens
	log         *slog.Logger
	// later holds events to append in the background (recordLater).
	later chan laterEvent
}

type laterEvent struct {
	typ  string
	data any
}

// RecordLater queues an event for the event log without waiting for it to
// be written; when the backlog is full the event is dropped and logged.
func (f *farm) RecordLater(typ string, data any) {
	select {
	case f.later <- laterEvent{typ, data}:
	default:
		f.log.Warn("event backlog full; event not recorded", "type", typ)
	}
}

// writeEvents appends the events of recordLater until ctx ends, then what
// is left. Events that arrive together are written in one transaction, so
// the log keeps up with any rate of webhooks.
func (f *farm) writeEvents(ctx context.Context) {
	batch := make([]state.NewEvent, 0, 256)
	flush := func() {
		if err := f.state.AppendAll(context.WithoutCancel(ctx), batch); err != nil {
			f.log.Error("record events", "count", len(batch), logErr, err)
		}
		batch = batch[:0]
	}
	take := func(ev laterEvent) { batch = append(batch, state.NewEvent{Type: ev.typ, Data: ev.data}) }
	for {
		select {
		case ev := <-f.later:
			take(ev)
		case <-ctx.Done():
			for {
				select {
				case ev := <-f.later:
					take(ev)
				default:
					flush()
					return
				}
			}
		}
	drain:
		for len(batch) < cap(batch) {
			select {
			case ev := <-f.later:
				take(ev)
			default:
				break drain
			}
		}
		flush()
	}
}

// newFarm opens the builder's state and assembles the pipeline. Keys that
// are not configured are made once in the state directory, so that the
// embedded defaults work; their public halves are logged.
func newFarm(ctx context.Context, cfg *config.Config, q queue.Queue, backend cache.Backend, clients map[string]forge.StatusClient, f farmFlags, log *slog.Logger) (*farm, error) {
	st, err := openState(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	cacheKey, err := loadOrCreateKey(cfg.SigningKeyFile, filepath.Join(cfg.StateDir, "cache-signing.key"), "farm-cache-1", log)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("cache signing key: %w", err)
	}
	deploySigner, err := newDeploySigner(ctx, cfg, f.deploySigner, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	var admin []byte
	if f.adminTokenFile != "" {
		token, err := secretfile.Read(f.adminTokenFile, "admin token")
		if err != nil {
			st.Close()
			return nil, err
		}
		admin = []byte(token)
	}
	publicURL := strings.TrimSuffix(cfg.PublicURL, "/")
	if publicURL == "" {
		publicURL = "http://" + cfg.Listen
	}
	cacheURL := f.cacheURL
	if cacheURL == "" {
		cacheURL = publicURL + "/nix-cache"
	}
	m := metrics.New(q)
	mirrors := filepath.Join(cfg.StateDir, "mirrors")
	p := &pipeline.Pipeline{
		State: st, Nix: &nix.Client{StoreDB: nix.DefaultStoreDB},
		Mirrors: func(repo string) *git.Mirror { return mirrorOf(mirrors, repo) },
		Cache:   backend, CacheKey: cacheKey, Signer: deploySigner, CacheURL: cacheURL,
		FlakeDir: f.flakeDir, Builders: f.builders, MaxSilent: f.maxSilent, BuildTimeout: f.buildTimeout,
		EvalOptions: nix.EvalOptions{MemoryBudget: f.evalMemory}, ManifestTTL: f.manifestTTL,
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
	return &farm{state: st, pipeline: p, metrics: m, log: log, later: make(chan laterEvent, 4096),
		adminToken: admin, agentTokens: server.NewAgentTokens(f.agentTokensDir, log)}, nil
}

// checkDeploySigner checks the choice of deploy signing: a key file
// (--deploy-key-file or deploy_key_file), a signer socket (--deploy-signer
// unix:PATH), or neither (a key made in the state directory); never both.
func checkDeploySigner(keyFile, signerAddr string) error {
	if signerAddr == "" {
		return nil
	}
	if keyFile != "" {
		return errors.New("--deploy-key-file and --deploy-signer are exclusive: the key is either held by serve or by the signer")
	}
	if p, ok := strings.CutPrefix(signerAddr, "unix:"); !ok || p == "" {
		return fmt.Errorf("--deploy-signer %q: want unix:PATH", signerAddr)
	}
	return nil
}

// newDeploySigner returns what signs deploy manifests: the signer at
// signerAddr, or a key held in this process.
func newDeploySigner(ctx context.Context, cfg *config.Config, signerAddr string, log *slog.Logger) (deploy.Signer, error) {
	if err := checkDeploySigner(cfg.DeployKeyFile, signerAddr); err != nil {
		return nil, err
	}
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
