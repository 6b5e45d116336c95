package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/mux"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/forge/forgejo"
	"github.com/homelab-farm/farm/internal/forge/github"
	"github.com/homelab-farm/farm/internal/httpsafe"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/state"
)

// server holds what the HTTP handlers share.
type server struct {
	cfg     *config.Config
	q       queue.Queue
	cache   cache.Backend // nil: no /nix-cache/
	log     *slog.Logger
	now     func() time.Time
	remotes []remote
	farm    *farm // nil in tests of the webhook surface alone
	// wake is signalled (without blocking) when a webhook queues a new job.
	wake chan struct{}
	// hookBudget bounds the webhook bodies held in memory at once.
	hookBudget *httpsafe.Budget
	// stall bounds each write of a cache download.
	stall time.Duration
}

// remote is a configured remote with its repository, for matching webhooks.
type remote struct {
	repo *config.Repository
	cfg  *config.Remote
	url  string // forge.NormalizeURL of cfg.URL
}

func newServer(cfg *config.Config, q queue.Queue, b cache.Backend, log *slog.Logger) *server {
	s := &server{cfg: cfg, q: q, cache: b, log: log, now: time.Now,
		hookBudget: httpsafe.NewBudget(max(defaultWebhookBudget, cfg.MaxBodyBytes)), stall: defaultStallTimeout}
	for i := range cfg.Repositories {
		r := &cfg.Repositories[i]
		for j := range r.Remotes {
			m := &r.Remotes[j]
			s.remotes = append(s.remotes, remote{repo: r, cfg: m, url: forge.NormalizeURL(m.URL)})
		}
	}
	return s
}

// routes is the builder's whole HTTP surface; every answer carries
// X-Content-Type-Options: nosniff.
func (s *server) routes() http.Handler {
	return httpsafe.NoSniff(s.router())
}

// router is the route table of routes.
func (s *server) router() *mux.Router {
	r := mux.NewRouter()
	r.Handle("/hooks/github", s.handle(s.githubHook)).Methods(http.MethodPost)
	r.Handle("/hooks/forgejo", s.handle(s.forgejoHook)).Methods(http.MethodPost)
	r.Handle("/api/jobs", s.handle(s.listJobs)).Methods(http.MethodGet)
	r.Handle("/api/jobs/{id:[0-9]+}", s.handle(s.getJob)).Methods(http.MethodGet)
	r.Handle("/healthz", s.handle(s.health)).Methods(http.MethodGet)
	if f := s.farm; f != nil {
		a := f.api
		r.Handle("/api/evaluations", s.handle(a.listEvaluations)).Methods(http.MethodGet)
		r.Handle("/api/evaluations", s.handle(a.trigger)).Methods(http.MethodPost)
		r.Handle("/api/evaluations/{id:[0-9]+}", s.handle(a.evaluation)).Methods(http.MethodGet)
		r.Handle("/api/targets/{id:[0-9]+}", s.handle(a.target)).Methods(http.MethodGet)
		r.Handle("/api/targets/{id:[0-9]+}/log", s.handle(a.targetLog)).Methods(http.MethodGet)
		r.Handle("/api/hosts", s.handle(a.hosts)).Methods(http.MethodGet)
		r.Handle("/api/hosts/{host}", s.handle(a.host)).Methods(http.MethodGet)
		r.Handle("/api/hosts/{host}/manifest", s.handle(a.manifest)).Methods(http.MethodGet)
		r.Handle("/api/hosts/{host}/seq", s.handle(a.hostSeq)).Methods(http.MethodGet)
		r.Handle("/api/hosts/{host}/report", s.handle(a.report)).Methods(http.MethodPost)
		r.Handle("/api/events", s.handle(a.events)).Methods(http.MethodGet)
		r.Handle("/metrics", f.metrics.Handler()).Methods(http.MethodGet)
		r.Handle("/", s.handle(a.dashboard)).Methods(http.MethodGet)
		r.Handle("/evaluations/{id:[0-9]+}", s.handle(a.evaluationPage)).Methods(http.MethodGet)
		r.Handle("/targets/{id:[0-9]+}", s.handle(a.targetPage)).Methods(http.MethodGet)
		r.Handle("/hosts", s.handle(a.hostsPage)).Methods(http.MethodGet)
		r.PathPrefix("/static/").Handler(s.handle(a.static)).Methods(http.MethodGet, http.MethodHead)
	}
	if s.cache != nil {
		r.PathPrefix("/nix-cache/").Handler(cacheHandler(s.cache, s.stall)).Methods(http.MethodGet, http.MethodHead)
	}
	return r
}

// httpError is an error with what the client is told. Err, if any, is
// logged and never sent.
type httpError struct {
	status     int
	msg        string
	err        error
	retryAfter time.Duration // > 0: sent as Retry-After
}

func (e *httpError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%d %s: %v", e.status, e.msg, e.err)
	}
	return fmt.Sprintf("%d %s", e.status, e.msg)
}

func (e *httpError) Unwrap() error { return e.err }

func errorf(status int, msg string, err error) error {
	return &httpError{status: status, msg: msg, err: err}
}

// handle adapts a handler that returns an error: the one place that writes
// error responses and logs them.
func (s *server) handle(h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		if clientGone(r, err) {
			s.log.Debug("client went away", logPath, r.URL.Path, logErr, err)
			return
		}
		var he *httpError
		if !errors.As(err, &he) {
			he = &httpError{status: http.StatusInternalServerError, msg: "internal error", err: err}
		}
		level := slog.LevelInfo
		switch {
		case he.retryAfter > 0:
			level = slog.LevelWarn // busy: a bound doing its job
		case he.status >= 500:
			level = slog.LevelError
		}
		s.log.Log(r.Context(), level, "request refused", logPath, r.URL.Path, logStatus, he.status, logErr, he)
		if he.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(he.retryAfter/time.Second))))
		}
		if wantsHTML(r) {
			writeHTMLError(w, he.status, he.msg)
			return
		}
		writeJSON(w, he.status, map[string]string{"error": he.msg})
	})
}

// clientGone reports whether err comes from the client having gone away
// (disconnected, or stopped reading past the write deadline) rather than
// from the server: there is no one to answer and nothing to alert on.
func clientGone(r *http.Request, err error) bool {
	return r.Context().Err() != nil || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, os.ErrDeadlineExceeded)
}

// wantsHTML reports whether the client is a browser on a dashboard page
// (API, hook and cache paths always answer JSON or plain text).
func wantsHTML(r *http.Request) bool {
	p := r.URL.Path
	if strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/hooks/") || strings.HasPrefix(p, "/nix-cache/") {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

func writeHTMLError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><meta charset=utf-8><title>%d</title><p>%d %s</p><p><a href=\"/\">farm</a></p>\n",
		status, status, html.EscapeString(msg))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *server) health(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// hook is what differs between forges' webhook endpoints.
type hook struct {
	forge   forge.Kind
	headers func(http.Header) (event, delivery, signature string)
	verify  func(signature string, body []byte, secrets [][]byte) (int, error)
	parse   func(event string, body []byte) (forge.Push, error)
}

var (
	githubHook = hook{
		forge: forge.GitHub,
		headers: func(h http.Header) (string, string, string) {
			return h.Get(github.EventHeader), h.Get(github.DeliveryHeader), h.Get(github.SignatureHeader)
		},
		verify: github.Verify,
		parse:  github.Parse,
	}
	forgejoHook = hook{forge: forge.Forgejo, headers: forgejo.Headers, verify: forgejo.Verify, parse: forgejo.Parse}
)

func (s *server) githubHook(w http.ResponseWriter, r *http.Request) error {
	return s.webhook(w, r, githubHook)
}

func (s *server) forgejoHook(w http.ResponseWriter, r *http.Request) error {
	return s.webhook(w, r, forgejoHook)
}

// webhook is the thin shell around a forge's parser: size limit,
// signature, parse, match the repository, enqueue durably, then 202.
func (s *server) webhook(w http.ResponseWriter, r *http.Request, h hook) error {
	received := s.now().UTC()
	body, release, err := readHookBody(w, r, s.hookBudget, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	defer release()
	event, delivery, signature := h.headers(r.Header)

	// Which remotes of this forge does the signature belong to? Checked
	// before the body is trusted for anything; each distinct secret is
	// tried once, however many remotes share it.
	var signedBy []remote
	tried := map[string]bool{}
	for _, rm := range s.remotes {
		if rm.cfg.Forge != h.forge {
			continue
		}
		for _, secret := range rm.cfg.Secrets {
			ok, seen := tried[string(secret)]
			if !seen {
				_, err := h.verify(signature, body, [][]byte{secret})
				ok = err == nil
				tried[string(secret)] = ok
			}
			if ok {
				signedBy = append(signedBy, rm)
				break
			}
		}
	}
	if len(signedBy) == 0 {
		return errorf(http.StatusUnauthorized, "bad or missing signature", forge.ErrSignature)
	}

	payload, err := formPayload(r.Header.Get("Content-Type"), body)
	if err != nil {
		return errorf(http.StatusBadRequest, "malformed payload", err)
	}
	push, err := h.parse(event, payload)
	switch {
	case errors.Is(err, forge.ErrIgnored):
		w.WriteHeader(http.StatusNoContent)
		return nil
	case err != nil:
		return errorf(http.StatusBadRequest, "malformed payload", err)
	}
	push.DeliveryID, push.ReceivedAt = delivery, received
	if push.Event == forge.EventPing {
		writeJSON(w, http.StatusOK, map[string]string{"status": "pong"})
		return nil
	}

	rm, ok := matchRemote(signedBy, push)
	if !ok {
		if _, known := matchRemote(s.remotes, push); known {
			// Signed with another remote's secret.
			return errorf(http.StatusUnauthorized, "bad or missing signature", forge.ErrSignature)
		}
		return s.ignore(w, push, "repository not configured")
	}
	if push.Deleted {
		return s.ignore(w, push, "ref deleted")
	}
	var branch string
	var deploy bool
	switch push.Event {
	case forge.EventPush:
		var evaluate bool
		if evaluate, deploy = rm.repo.Branch(push.Branch); !evaluate {
			return s.ignore(w, push, "branch not evaluated")
		}
		branch = push.Branch
	case forge.EventPullRequest:
		branch = fmt.Sprintf("pull/%d", push.PullNumber) // newer commits of a PR supersede older ones
	}
	pj, err := json.Marshal(push)
	if err != nil {
		return err
	}
	req := queue.EnqueueRequest{
		Kind:      queue.KindEval,
		Key:       queue.EvalKey(rm.repo.Name, push.After),
		Repo:      rm.repo.Name,
		Branch:    branch,
		Commit:    push.After,
		Before:    push.Before,
		Deploy:    deploy,
		Supersede: true,
		Remote:    queue.Remote{Forge: string(h.forge), URL: rm.cfg.URL, FullName: fullName(rm.cfg.URL)},
		Payload:   pj,
	}
	if delivery != "" {
		req.DeliveryKey = string(h.forge) + ":" + delivery
	}
	res, err := s.q.Enqueue(r.Context(), req)
	if err != nil {
		return errorf(http.StatusServiceUnavailable, "queue unavailable", err)
	}
	if res.Created && s.wake != nil {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	if res.Created && s.farm != nil {
		// Recorded in the background: the push is durable in the queue
		// already, and the 202 must not wait for a second fsync.
		s.farm.recordLater(string(farmapi.EvalQueued), farmapi.EvalQueuedData{
			Job: res.JobID, Repo: rm.repo.Name, Branch: push.Branch, Commit: push.After,
			Forge: string(h.forge), Superseded: res.Superseded, Late: res.Late,
		})
	}
	s.log.Info("push queued", logForge, h.forge, logDelivery, delivery, logRepo, rm.repo.Name,
		logCommit, push.After, logJob, res.JobID, logCreated, res.Created, logReplay, res.Replay)
	writeJSON(w, http.StatusAccepted, farmapi.EnqueueResponse{
		Job: res.JobID, Commit: push.After, Created: res.Created, Replay: res.Replay, Late: res.Late, Superseded: res.Superseded,
	})
	return nil
}

func (s *server) ignore(w http.ResponseWriter, p forge.Push, why string) error {
	s.log.Info("webhook ignored", logForge, p.Forge, logDelivery, p.DeliveryID, logReason, why, logRef, p.Ref)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// matchRemote finds the remote whose URL is the push's repository.
func matchRemote(remotes []remote, p forge.Push) (remote, bool) {
	web, clone := forge.NormalizeURL(p.WebURL), forge.NormalizeURL(p.CloneURL)
	for _, rm := range remotes {
		if rm.cfg.Forge == p.Forge && rm.url != "" && (rm.url == web || rm.url == clone) {
			return rm, true
		}
	}
	return remote{}, false
}

// formPayload returns the JSON of a webhook body: the body itself, or its
// "payload" field when the hook is set to send a form.
func formPayload(contentType string, body []byte) ([]byte, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt != "application/x-www-form-urlencoded" {
		return body, nil
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("form body: %w", err)
	}
	return []byte(v.Get("payload")), nil
}

// jobsResponse is GET /api/jobs.
type jobsResponse struct {
	Jobs []queue.Job `json:"jobs"`
}

// listJobs shows the queue's evaluation jobs, newest first (?state, ?repo,
// ?limit).
func (s *server) listJobs(w http.ResponseWriter, r *http.Request) error {
	opts := queue.ListOptions{Kind: queue.KindEval, Repo: r.URL.Query().Get("repo")}
	if v := r.URL.Query().Get("state"); v != "" {
		for st := range strings.SplitSeq(v, ",") {
			switch queue.State(st) {
			case queue.Queued, queue.Running, queue.Done, queue.Dead, queue.Superseded:
				opts.States = append(opts.States, queue.State(st))
			default:
				return errorf(http.StatusBadRequest, "unknown state "+strconv.Quote(st), nil)
			}
		}
	}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return errorf(http.StatusBadRequest, "limit: want 1 to 1000", nil)
		}
		opts.Limit = n
	}
	jobs, err := s.q.List(r.Context(), opts)
	if err != nil {
		return errorf(http.StatusServiceUnavailable, "queue unavailable", err)
	}
	writeJSON(w, http.StatusOK, jobsResponse{Jobs: jobs})
	return nil
}

// jobView is a queue job with its evaluation once a worker started it.
type jobView struct {
	queue.Job
	Eval int64 `json:"eval,omitempty"`
}

// getJob shows one job by its id (the "job" of a webhook's or trigger's
// answer) and the id of its evaluation, if any.
func (s *server) getJob(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		return errorf(http.StatusBadRequest, "bad id", err)
	}
	j, err := s.q.Get(r.Context(), id)
	if errors.Is(err, queue.ErrNotFound) {
		return errorf(http.StatusNotFound, "no such job", nil)
	}
	if err != nil {
		return errorf(http.StatusServiceUnavailable, "queue unavailable", err)
	}
	v := jobView{Job: j}
	if s.farm != nil {
		ev, err := s.farm.state.EvaluationByJob(r.Context(), j.ID)
		switch {
		case err == nil:
			v.Eval = ev.ID
		case !errors.Is(err, state.ErrNotFound):
			return err
		}
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}
