package server

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/server/httperr"
)

// routes is the one route table of the builder. Path variables: {id} is
// the number of a job, an evaluation or a target as the path says; {host}
// a host name.
//
// To add a route: write a handler returning error (API in this package,
// pages in dashboard/), return client errors from the catalogue
// (httperr/errors.go, adding a message there), take what it reads as a
// small interface in Deps, and add one line here with its methods.
func (s *Server) routes() *mux.Router {
	r := mux.NewRouter()
	get, post := http.MethodGet, http.MethodPost

	// Forges.
	r.Handle("/hooks/github", s.handle(s.githubHook)).Methods(post)
	r.Handle("/hooks/forgejo", s.handle(s.forgejoHook)).Methods(post)

	// The JSON API.
	r.Handle("/api/jobs", s.handle(s.listJobs)).Methods(get)
	r.Handle("/api/jobs/{id:[0-9]+}", s.handle(s.getJob)).Methods(get)
	r.Handle("/api/evaluations", s.handle(s.listEvaluations)).Methods(get)
	r.Handle("/api/evaluations", s.handle(s.trigger)).Methods(post)
	r.Handle("/api/evaluations/{id:[0-9]+}", s.handle(s.evaluation)).Methods(get)
	r.Handle("/api/targets/{id:[0-9]+}", s.handle(s.target)).Methods(get)
	r.Handle("/api/targets/{id:[0-9]+}/log", s.handle(s.targetLog)).Methods(get)
	r.Handle("/api/targets/{id:[0-9]+}/diff", s.handle(s.targetDiff)).Methods(get)
	r.Handle("/api/hosts", s.handle(s.hosts)).Methods(get)
	r.Handle("/api/hosts/{host}", s.handle(s.host)).Methods(get)
	r.Handle("/api/events", s.handle(s.eventStream)).Methods(get)
	r.Handle("/api/cache", s.handle(s.cacheSummary)).Methods(get)
	r.Handle("/api/rollouts", s.handle(s.listRollouts)).Methods(get)
	r.Handle("/api/rollouts", s.handle(s.rollback)).Methods(post)
	r.Handle("/api/rollouts/{id:[0-9]+}", s.handle(s.getRollout)).Methods(get)
	r.Handle("/api/rollouts/{id:[0-9]+}/resume", s.handle(s.resumeRollout)).Methods(post)
	r.Handle("/api/rollouts/{id:[0-9]+}/abort", s.handle(s.abortRollout)).Methods(post)

	// Agents.
	r.Handle("/api/hosts/{host}/manifest", s.handle(s.manifest)).Methods(get)
	r.Handle("/api/hosts/{host}/seq", s.handle(s.hostSeq)).Methods(get)
	r.Handle("/api/hosts/{host}/report", s.handle(s.report)).Methods(post)

	// Operations.
	r.Handle("/healthz", s.handle(s.health)).Methods(get)
	r.Handle("/metrics", s.metricsHandler()).Methods(get)
	r.PathPrefix("/nix-cache/").Handler(s.cacheHandler()).Methods(get, http.MethodHead)

	// The dashboard.
	r.Handle("/", s.handle(s.dash.Index)).Methods(get)
	r.Handle("/evaluations/{id:[0-9]+}", s.handle(s.dash.Evaluation)).Methods(get)
	r.Handle("/targets/{id:[0-9]+}", s.handle(s.dash.Target)).Methods(get)
	r.Handle("/hosts", s.handle(s.dash.Hosts)).Methods(get)
	r.Handle("/cache", s.handle(s.dash.Cache)).Methods(get)
	r.Handle("/rollouts", s.handle(s.dash.RolloutList)).Methods(get)
	r.Handle("/rollouts/{id:[0-9]+}", s.handle(s.dash.Rollout)).Methods(get)
	r.PathPrefix("/static/").Handler(s.handle(s.dash.Static)).Methods(get, http.MethodHead)
	return r
}

// handle adapts a handler that returns its failure (httperr.Handler).
func (s *Server) handle(h httperr.HandlerFunc) http.Handler { return httperr.Handler(s.log, h) }

func (s *Server) health(w http.ResponseWriter, r *http.Request) error {
	httperr.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) metricsHandler() http.Handler {
	if s.metrics == nil {
		return s.handle(func(http.ResponseWriter, *http.Request) error { return httperr.ErrNotFound })
	}
	return s.metrics
}

// cacheHandler serves the cache read-only under /nix-cache/.
func (s *Server) cacheHandler() http.Handler {
	if s.cache == nil {
		return s.handle(func(http.ResponseWriter, *http.Request) error { return httperr.ErrNoCache })
	}
	return http.StripPrefix("/nix-cache", cache.NewHandlerWith(s.cache, cache.HandlerOptions{StallTimeout: s.stall}))
}
