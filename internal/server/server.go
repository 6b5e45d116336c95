package server

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/httpsafe"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/server/dashboard"
	"github.com/homelab-farm/farm/internal/state"
)

// Jobs is the part of the queue (queue.Queue) the server uses: webhooks
// and triggers enqueue, the API lists and shows jobs. Errors other than
// queue.ErrNotFound from Get are answered 503 "queue unavailable".
type Jobs interface {
	Enqueue(ctx context.Context, req queue.EnqueueRequest) (queue.EnqueueResult, error)
	List(ctx context.Context, opts queue.ListOptions) ([]queue.Job, error)
	Get(ctx context.Context, id int64) (queue.Job, error)
}

// State is what the server reads of the builder's state (*state.Store):
// the dashboard's reads, a job's evaluation, a host, and the event log.
// A missing row is state.ErrNotFound. Changed returns a channel closed at
// the next append, so an event stream waits without polling.
type State interface {
	dashboard.State
	EvaluationByJob(ctx context.Context, jobID int64) (state.Evaluation, error)
	Host(ctx context.Context, name string) (state.Host, error)
	EventsAfter(ctx context.Context, after int64, limit int) ([]state.Event, error)
	Changed() <-chan struct{}
}

// Reports takes in what agents report (*state.Store): the host's current
// closure and result, then the report as an event.
type Reports interface {
	Report(ctx context.Context, host, current, result, reason string) error
	Append(ctx context.Context, typ string, data any) (state.Event, error)
}

// Manifests returns the manifest to serve for a host, renewed first when
// it is close to its expiry (*pipeline.Pipeline). An error wrapping
// pipeline.ErrManifestExpired is answered 503 with Retry-After.
type Manifests interface {
	CurrentManifest(ctx context.Context, h state.Host) ([]byte, error)
}

// EventRecorder queues an event for the event log without waiting for it
// to be written (the farm's background writer). It must not block.
type EventRecorder interface {
	RecordLater(typ string, data any)
}

// AgentAuth checks an agent's bearer token for its host (*AgentTokens).
type AgentAuth interface {
	Authorized(host string, r *http.Request) bool
}

// Deps are what the server serves. Config, Jobs, State, Reports and Log
// are required; every other field has a stated default.
type Deps struct {
	// Config gives the repositories (webhook secrets, triggers, commit
	// links) and max_body_bytes.
	Config  *config.Config
	Jobs    Jobs
	State   State
	Reports Reports
	// Manifests renews manifests when served; nil serves them as stored.
	Manifests Manifests
	// Cache is served read-only at /nix-cache/; nil answers 404 there.
	Cache cache.Backend
	// Metrics is served at /metrics; nil answers 404 there.
	Metrics http.Handler
	// Events records webhook events in the background; nil records none.
	Events EventRecorder
	// OnQueued is called, without blocking, when a webhook made a new job
	// (the worker pool's wake-up); nil: nothing is told.
	OnQueued func(queue.EnqueueResult)
	// AdminToken guards POST /api/evaluations; empty refuses every trigger.
	AdminToken []byte
	// Agents checks agents' tokens; nil refuses every agent.
	Agents AgentAuth
	// LogDir holds the build logs, <target id>.log.
	LogDir string
	Limits Limits
	Log    *slog.Logger
	Now    func() time.Time // nil: time.Now
}

// Server is the builder's HTTP surface over Deps.
type Server struct {
	cfg        *config.Config
	jobs       Jobs
	state      State
	reports    Reports
	manifests  Manifests
	cache      cache.Backend
	metrics    http.Handler
	events     EventRecorder
	onQueued   func(queue.EnqueueResult)
	adminToken []byte
	agents     AgentAuth
	logDir     string
	log        *slog.Logger
	now        func() time.Time
	remotes    []remote
	dash       *dashboard.Dashboard
	// hookBudget bounds the webhook bodies held in memory at once; streams
	// bounds the open event and log-follow streams; stall bounds each
	// write of a stream, log or cache download.
	hookBudget *httpsafe.Budget
	streams    *httpsafe.Slots
	stall      time.Duration
}

// remote is a configured remote with its repository, for matching webhooks.
type remote struct {
	repo *config.Repository
	cfg  *config.Remote
	url  string // forge.NormalizeURL of cfg.URL
}

// New returns the server over d; d.Limits are completed with their
// defaults (see Limits).
func New(d Deps) *Server {
	l := d.Limits.withDefaults(d.Config.MaxBodyBytes)
	now := d.Now
	if now == nil {
		now = time.Now
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg: d.Config, jobs: d.Jobs, state: d.State, reports: d.Reports, manifests: d.Manifests,
		cache: d.Cache, metrics: d.Metrics, events: d.Events, onQueued: d.OnQueued,
		adminToken: d.AdminToken, agents: d.Agents, logDir: d.LogDir, log: log, now: now,
		hookBudget: httpsafe.NewBudget(l.WebhookBudget), streams: httpsafe.NewSlots(l.MaxStreams), stall: l.StallTimeout,
		dash: &dashboard.Dashboard{State: d.State, Jobs: d.Jobs, Repositories: d.Config.Repositories, LogDir: d.LogDir, Now: now},
	}
	for i := range d.Config.Repositories {
		r := &d.Config.Repositories[i]
		for j := range r.Remotes {
			m := &r.Remotes[j]
			s.remotes = append(s.remotes, remote{repo: r, cfg: m, url: forge.NormalizeURL(m.URL)})
		}
	}
	return s
}

// Handler is the whole HTTP surface; every answer carries
// X-Content-Type-Options: nosniff.
func (s *Server) Handler() http.Handler {
	return httpsafe.NoSniff(s.routes())
}

// Log attribute keys.
const (
	logErr      = "err"
	logJob      = "job"
	logRepo     = "repo"
	logCommit   = "commit"
	logForge    = "forge"
	logDelivery = "delivery"
	logReason   = "reason"
	logRef      = "ref"
	logCreated  = "created"
	logReplay   = "replay"
)
