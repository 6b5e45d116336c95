package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/forge/forgejo"
	"github.com/homelab-farm/farm/internal/forge/github"
	"github.com/homelab-farm/farm/internal/forge/httpretry"
	"github.com/homelab-farm/farm/internal/queue"
)

// statusSender sends an evaluation's commit statuses to every remote its
// commit arrived from that has a token configured.
type statusSender struct {
	clients   map[string]forge.StatusClient // by forge.NormalizeURL of the remote
	prefix    string
	limit     int
	publicURL string
	log       *slog.Logger
}

// newStatusSender builds one client per remote with a token_file. hc is
// shared by all (nil: a retrying client).
func newStatusSender(cfg *config.Config, hc *http.Client, log *slog.Logger) (*statusSender, error) {
	if hc == nil {
		hc = httpretry.New(httpretry.Options{Log: log})
	}
	s := &statusSender{
		clients:   map[string]forge.StatusClient{},
		prefix:    cfg.Statuses.Context,
		limit:     cfg.Statuses.PerHostLimit,
		publicURL: strings.TrimSuffix(cfg.PublicURL, "/"),
		log:       log,
	}
	for _, r := range cfg.Repositories {
		for _, m := range r.Remotes {
			if m.TokenFile == "" {
				continue
			}
			token, err := m.ReadToken()
			if err != nil {
				return nil, fmt.Errorf("remote %s: %w", m.URL, err)
			}
			var c forge.StatusClient
			switch m.Forge {
			case forge.GitHub:
				c, err = github.NewStatusClient(m.APIURL, token, hc)
			case forge.Forgejo:
				api := m.APIURL
				if api == "" {
					if api, err = forgejo.APIURL(m.URL); err != nil {
						return nil, err
					}
				}
				c, err = forgejo.NewStatusClient(api, token, hc)
			}
			if err != nil {
				return nil, fmt.Errorf("remote %s: %w", m.URL, err)
			}
			// Statuses go to the configured repository, never to a
			// full_name a payload brought.
			s.clients[forge.NormalizeURL(m.URL)] = forge.ForRepo(c, fullName(m.URL))
		}
	}
	return s, nil
}

// targets are the job's remotes that statuses can go to.
func (s *statusSender) targets(job queue.Job) []forge.StatusTarget {
	var ts []forge.StatusTarget
	for _, r := range job.Remotes {
		if c, ok := s.clients[forge.NormalizeURL(r.URL)]; ok {
			ts = append(ts, forge.StatusTarget{Client: c, FullName: fullName(r.URL), Name: r.URL})
		}
	}
	return ts
}

// send reports an evaluation's overall status and per-host results
// (capped per the configuration) to every remote of job.
func (s *statusSender) send(ctx context.Context, job queue.Job, overall forge.Status, hosts []forge.HostResult) error {
	ts := s.targets(job)
	if len(ts) == 0 {
		return nil
	}
	if overall.TargetURL == "" && s.publicURL != "" {
		overall.TargetURL = fmt.Sprintf("%s/api/evaluations/%d", s.publicURL, job.ID)
	}
	return forge.Report(ctx, s.log, ts, job.Commit, forge.PlanStatuses(s.prefix, overall, hosts, s.limit))
}
