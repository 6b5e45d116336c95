package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

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

// Statuses sends an evaluation's commit statuses to every remote its commit
// arrived from that has a status client. It is the one status path: the
// pool reports "pending" and dead jobs, the pipeline the outcome.
type Statuses struct {
	// For returns the status client of a remote, or nil for none.
	For func(queue.Remote) forge.StatusClient
	// Context prefixes status contexts (default DefaultStatusContext);
	// Limit caps per-host statuses (default DefaultStatusLimit; see
	// forge.PlanStatuses).
	Context string
	Limit   int
	// PublicURL is the builder's address for links; "" sends none.
	PublicURL string
	Log       *slog.Logger
}

// ByURL looks a remote's client up by forge.NormalizeURL of its URL.
func ByURL(clients map[string]forge.StatusClient) func(queue.Remote) forge.StatusClient {
	return func(r queue.Remote) forge.StatusClient { return clients[forge.NormalizeURL(r.URL)] }
}

// Send reports overall and per-host results to every remote of job. A nil
// Statuses sends nothing.
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
	base := strings.TrimSuffix(s.PublicURL, "/")
	if overall.TargetURL == "" && base != "" {
		overall.TargetURL = fmt.Sprintf("%s/api/jobs/%d", base, job.ID)
	}
	prefix := s.Context
	if prefix == "" {
		prefix = DefaultStatusContext
	}
	limit := s.Limit
	if limit <= 0 {
		limit = DefaultStatusLimit
	}
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return forge.Report(ctx, log, targets, job.Commit, forge.PlanStatuses(prefix, overall, hosts, limit))
}

// HostResults are the per-host statuses of an evaluation's targets, linked
// to their pages under publicURL ("": no links).
func HostResults(recs []state.Target, publicURL string) []forge.HostResult {
	base := strings.TrimSuffix(publicURL, "/")
	hosts := make([]forge.HostResult, 0, len(recs))
	for _, t := range recs {
		hr := forge.HostResult{Host: t.Host, Description: hostDescription(t)}
		switch t.State {
		case state.TargetBuilt, state.TargetCached, state.TargetSkipped:
			hr.State = forge.StateSuccess
		case state.TargetFailed:
			hr.State = forge.StateFailure
		default:
			hr.State = forge.StatePending
		}
		if base != "" {
			hr.TargetURL = fmt.Sprintf("%s/targets/%d", base, t.ID)
		}
		hosts = append(hosts, hr)
	}
	return hosts
}

// report sends the outcome of an evaluation.
func (p *Pipeline) report(ctx context.Context, job queue.Job, overall forge.Status, recs []state.Target) {
	if p.Statuses == nil {
		return
	}
	if err := p.Statuses.Send(ctx, job, overall, HostResults(recs, p.Statuses.PublicURL)); err != nil {
		p.failure("status")
		p.log().Warn("commit statuses", "commit", job.Commit, "err", err)
	}
}
