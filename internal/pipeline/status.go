package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"

	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/state"
)

// Default status settings: the context prefix ("farm/eval", "farm/host/…")
// and how many hosts get a status of their own.
const (
	DefaultStatusContext = "farm"
	DefaultStatusLimit   = 20
)

// EvalFinder finds the evaluation of a queue job; *state.Store is one.
type EvalFinder interface {
	EvaluationByJob(ctx context.Context, jobID int64) (state.Evaluation, error)
}

// Statuses sends an evaluation's commit statuses to every remote its commit
// arrived from that has a status client. It is the one status path: the
// pool reports "pending" and dead jobs, the pipeline the outcome.
//
// Per job attempt, statuses never go back: a "pending" that arrives after
// the outcome was sent (the pool sends it in the background) is dropped,
// and within one Send every host status goes out before the overall one,
// so the forge's combined status is never success while a host is
// pending. Safe for concurrent use; do not copy.
type Statuses struct {
	// For returns the status client of a remote, or nil for none.
	For func(queue.Remote) forge.StatusClient
	// Context prefixes status contexts (default DefaultStatusContext);
	// Limit caps per-host statuses (default DefaultStatusLimit; see
	// forge.PlanStatuses).
	Context string
	Limit   int
	// PublicURL is where people open the dashboard; statuses link to its
	// pages (/evaluations/{id}, /targets/{id}). "", or an address nobody
	// can open (port 0, 0.0.0.0), sends no links: see PublicURLWarning.
	PublicURL string
	// Evaluations, if set, finds the evaluation of a job whose status has
	// no link of its own (the pool's), to link its page.
	Evaluations EvalFinder
	Log         *slog.Logger

	mu    sync.Mutex
	jobs  map[jobAttempt]*jobStatus
	order []jobAttempt // the keys of jobs, oldest first
}

// jobAttempt is one claim of a job.
type jobAttempt struct {
	id       int64
	attempts int
}

// jobStatus orders the statuses of one job attempt.
type jobStatus struct {
	mu   sync.Mutex
	rank int // of the last overall status sent
}

// keepJobs is how many job attempts Statuses remembers, to drop a late
// "pending" for them: far more than a builder runs at once.
const keepJobs = 1024

// rank orders overall statuses: a pending one without a link, a pending
// one with a link, the outcome.
func rank(st forge.Status) int {
	switch {
	case st.State != forge.StatePending:
		return 2
	case st.TargetURL != "":
		return 1
	}
	return 0
}

// ByURL looks a remote's client up by forge.NormalizeURL of its URL.
func ByURL(clients map[string]forge.StatusClient) func(queue.Remote) forge.StatusClient {
	return func(r queue.Remote) forge.StatusClient { return clients[forge.NormalizeURL(r.URL)] }
}

// PublicURLWarning returns the warning the builder logs at start-up when
// its public URL gives commit statuses no links (none configured, or an
// address nobody can open), or "" when statuses link to it.
func PublicURLWarning(publicURL string) string {
	if publicURL == "" {
		return "no public_url configured: commit statuses carry no links to the dashboard; set public_url to the address people open it at"
	}
	if linkBase(publicURL) == "" {
		shown := "public_url"
		if u, err := url.Parse(publicURL); err == nil && u.User == nil {
			shown = fmt.Sprintf("public_url %q", publicURL)
		}
		return shown + " is not an address people can open (want http(s)://host[:port] without credentials, not port 0 or 0.0.0.0): commit statuses carry no links"
	}
	return ""
}

// linkBase returns publicURL without its trailing slash if pages can be
// linked under it, else "".
func linkBase(publicURL string) string {
	u, err := url.Parse(publicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return ""
	}
	if u.Port() == "0" {
		return ""
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsUnspecified() {
		return ""
	}
	return strings.TrimSuffix(publicURL, "/")
}

// link is the URL of a dashboard page, or "" without a usable public URL.
func (s *Statuses) link(format string, args ...any) string {
	base := linkBase(s.PublicURL)
	if base == "" {
		return ""
	}
	return base + fmt.Sprintf(format, args...)
}

// EvaluationURL is the dashboard page of an evaluation, "" without a
// usable public URL.
func (s *Statuses) EvaluationURL(evalID int64) string { return s.link("/evaluations/%d", evalID) }

// TargetURL is the dashboard page of a target, "" without a usable public
// URL.
func (s *Statuses) TargetURL(targetID int64) string { return s.link("/targets/%d", targetID) }

// job returns the status order of a job attempt.
func (s *Statuses) job(k jobAttempt) *jobStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jobs == nil {
		s.jobs = map[jobAttempt]*jobStatus{}
	}
	js := s.jobs[k]
	if js == nil {
		js = &jobStatus{}
		s.jobs[k] = js
		s.order = append(s.order, k)
		for len(s.order) > keepJobs {
			delete(s.jobs, s.order[0])
			s.order = s.order[1:]
		}
	}
	return js
}

// Send reports per-host results, then the overall one, to every remote of
// job. A status without a link gets the evaluation's page when Evaluations
// finds it. A nil Statuses sends nothing.
func (s *Statuses) Send(ctx context.Context, job queue.Job, overall forge.Status, hosts []forge.HostResult) error {
	if s == nil || s.For == nil {
		return nil
	}
	var targets []forge.StatusTarget
	for _, r := range job.Remotes {
		if c := s.For(r); c != nil {
			targets = append(targets, forge.StatusTarget{Client: c, FullName: r.FullName, Name: r.URL})
		}
	}
	if len(targets) == 0 {
		return nil
	}
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if overall.TargetURL == "" && s.Evaluations != nil && linkBase(s.PublicURL) != "" {
		if ev, err := s.Evaluations.EvaluationByJob(ctx, job.ID); err == nil {
			overall.TargetURL = s.EvaluationURL(ev.ID)
		}
	}
	k := jobAttempt{job.ID, job.Attempts}
	js := s.job(k)
	js.mu.Lock()
	defer js.mu.Unlock()
	r := rank(overall)
	if r < js.rank {
		log.Debug("commit status dropped: the job's status is further on", "job", job.ID, "state", overall.State)
		return nil
	}
	prefix := s.Context
	if prefix == "" {
		prefix = DefaultStatusContext
	}
	limit := s.Limit
	if limit <= 0 {
		limit = DefaultStatusLimit
	}
	err := forge.Report(ctx, log, targets, job.Commit, forge.PlanStatuses(prefix, overall, hosts, limit))
	js.rank = max(js.rank, r)
	return err
}

// HostResults are the per-host statuses of an evaluation's targets, with
// the closure diff line of each target that has one (diffLines, by target
// id) and linked to their pages under publicURL (none without a usable
// one).
func HostResults(recs []state.Target, diffLines map[int64]string, publicURL string) []forge.HostResult {
	s := &Statuses{PublicURL: publicURL}
	hosts := make([]forge.HostResult, 0, len(recs))
	for _, t := range recs {
		hr := forge.HostResult{Host: t.Host, Description: hostDescription(t, diffLines[t.ID]), TargetURL: s.TargetURL(t.ID)}
		switch t.State {
		case state.TargetBuilt, state.TargetCached, state.TargetSkipped:
			hr.State = forge.StateSuccess
		case state.TargetFailed:
			hr.State = forge.StateFailure
		default:
			hr.State = forge.StatePending
		}
		hosts = append(hosts, hr)
	}
	return hosts
}

// report sends a status of evaluation evalID, linked to its page, with
// the statuses of its hosts (recs; none while it runs).
func (p *Pipeline) report(ctx context.Context, job queue.Job, evalID int64, overall forge.Status, recs []state.Target) {
	if p.Statuses == nil {
		return
	}
	if overall.TargetURL == "" {
		overall.TargetURL = p.Statuses.EvaluationURL(evalID)
	}
	var lines map[int64]string
	if len(recs) > 0 {
		lines = p.diffLines(ctx, job, recs)
	}
	if err := p.Statuses.Send(ctx, job, overall, HostResults(recs, lines, p.Statuses.PublicURL)); err != nil {
		p.failure("status")
		p.log().Warn("commit statuses", "commit", job.Commit, "err", err)
	}
}
