package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/git"
	"github.com/homelab-farm/farm/internal/httpsafe"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/server/httperr"
	"github.com/homelab-farm/farm/internal/state"
)

// jobsResponse is GET /api/jobs.
type jobsResponse struct {
	Jobs []queue.Job `json:"jobs"`
}

// listJobs shows the queue's evaluation jobs, newest first (?state, ?repo,
// ?limit).
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) error {
	opts := queue.ListOptions{Kind: queue.KindEval, Repo: r.URL.Query().Get("repo")}
	if v := r.URL.Query().Get("state"); v != "" {
		for st := range strings.SplitSeq(v, ",") {
			switch queue.State(st) {
			case queue.Queued, queue.Running, queue.Done, queue.Dead, queue.Superseded:
				opts.States = append(opts.States, queue.State(st))
			default:
				return httperr.UnknownState(st)
			}
		}
	}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return httperr.ErrBadLimit
		}
		opts.Limit = n
	}
	jobs, err := s.jobs.List(r.Context(), opts)
	if err != nil {
		return httperr.ErrQueueUnavailable.Wrap(err)
	}
	httperr.WriteJSON(w, http.StatusOK, jobsResponse{Jobs: jobs})
	return nil
}

// jobView is a queue job with its evaluation once a worker started it.
type jobView struct {
	queue.Job
	Eval int64 `json:"eval,omitempty"`
}

// getJob shows one job by its id (the "job" of a webhook's or trigger's
// answer) and the id of its evaluation, if any.
func (s *Server) getJob(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		return httperr.ErrBadJobID.Wrap(err)
	}
	j, err := s.jobs.Get(r.Context(), id)
	if errors.Is(err, queue.ErrNotFound) {
		return httperr.ErrNoJob
	}
	if err != nil {
		return httperr.ErrQueueUnavailable.Wrap(err)
	}
	v := jobView{Job: j}
	ev, err := s.state.EvaluationByJob(r.Context(), j.ID)
	switch {
	case err == nil:
		v.Eval = ev.ID
	case !errors.Is(err, state.ErrNotFound):
		return err
	}
	httperr.WriteJSON(w, http.StatusOK, v)
	return nil
}

// evaluationView is an evaluation with its targets, as the API shows it.
type evaluationView struct {
	state.Evaluation
	Targets []state.Target `json:"targets"`
}

// evaluationsResponse is GET /api/evaluations.
type evaluationsResponse struct {
	Evaluations []state.Evaluation `json:"evaluations"`
}

// listEvaluations shows the latest evaluations, newest first (?limit, 1 to
// 1000, default 50).
func (s *Server) listEvaluations(w http.ResponseWriter, r *http.Request) error {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return httperr.ErrBadLimit
		}
		limit = n
	}
	evs, err := s.state.Evaluations(r.Context(), limit)
	if err != nil {
		return err
	}
	if evs == nil {
		evs = []state.Evaluation{}
	}
	httperr.WriteJSON(w, http.StatusOK, evaluationsResponse{Evaluations: evs})
	return nil
}

// evaluation shows an evaluation (by its id, as /evaluations/{id} does)
// with its targets; its job_id leads to /api/jobs/{id}.
func (s *Server) evaluation(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		return httperr.ErrBadEvaluationID.Wrap(err)
	}
	ev, err := s.state.Evaluation(r.Context(), id)
	if errors.Is(err, state.ErrNotFound) {
		return httperr.ErrNoEvaluation
	}
	if err != nil {
		return err
	}
	ts, err := s.state.Targets(r.Context(), ev.ID)
	if err != nil {
		return err
	}
	if ts == nil {
		ts = []state.Target{} // evaluating: hosts not known yet
	}
	httperr.WriteJSON(w, http.StatusOK, evaluationView{Evaluation: ev, Targets: ts})
	return nil
}

func (s *Server) target(w http.ResponseWriter, r *http.Request) error {
	t, err := s.targetFrom(r)
	if err != nil {
		return err
	}
	httperr.WriteJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) targetFrom(r *http.Request) (state.Target, error) {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		return state.Target{}, httperr.ErrBadTargetID.Wrap(err)
	}
	t, err := s.state.Target(r.Context(), id)
	if errors.Is(err, state.ErrNotFound) {
		return state.Target{}, httperr.ErrNoTarget
	}
	return t, err
}

func (s *Server) hosts(w http.ResponseWriter, r *http.Request) error {
	hs, err := s.state.Hosts(r.Context())
	if err != nil {
		return err
	}
	if hs == nil {
		hs = []state.Host{}
	}
	httperr.WriteJSON(w, http.StatusOK, hs)
	return nil
}

func (s *Server) host(w http.ResponseWriter, r *http.Request) error {
	h, err := s.state.Host(r.Context(), mux.Vars(r)["host"])
	if errors.Is(err, state.ErrNotFound) {
		return httperr.ErrNoHost
	}
	if err != nil {
		return err
	}
	httperr.WriteJSON(w, http.StatusOK, h)
	return nil
}

// manifest serves a host's signed deploy manifest, renewed first when it
// is close to its expiry. It carries no secret: the agent trusts it for its
// signature, not for where it came from.
func (s *Server) manifest(w http.ResponseWriter, r *http.Request) error {
	h, err := s.state.Host(r.Context(), mux.Vars(r)["host"])
	if errors.Is(err, state.ErrNotFound) || (err == nil && len(h.Manifest) == 0) {
		return httperr.ErrNoManifest
	}
	if err != nil {
		return err
	}
	body := []byte(h.Manifest)
	if s.manifests != nil {
		body, err = s.manifests.CurrentManifest(r.Context(), h)
		if errors.Is(err, pipeline.ErrManifestExpired) {
			w.Header().Set("Retry-After", "60")
			return httperr.ErrManifestExpired.Wrap(err)
		}
		if err != nil {
			return err
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
	return nil
}

// hostSeq tells a host's agent the seq of the host's current manifest (0:
// none), so that an agent that lost its state refuses an older manifest.
// Only the host's own agent may ask.
func (s *Server) hostSeq(w http.ResponseWriter, r *http.Request) error {
	host := mux.Vars(r)["host"]
	if !s.agentAuthorized(host, r) {
		return httperr.ErrAgentToken
	}
	h, err := s.state.Host(r.Context(), host)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	httperr.WriteJSON(w, http.StatusOK, farmapi.SeqResponse{Seq: h.DesiredSeq})
	return nil
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) error {
	host := mux.Vars(r)["host"]
	if !s.agentAuthorized(host, r) {
		return httperr.ErrAgentToken
	}
	var rep farmapi.Report
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&rep); err != nil {
		return httperr.ErrMalformedReport.Wrap(err)
	}
	if rep.Result == "" || (rep.Current != "" && !strings.HasPrefix(rep.Current, "/nix/store/")) {
		return httperr.ErrIncompleteReport
	}
	if !rep.Result.Valid() {
		return httperr.UnknownResult(string(rep.Result))
	}
	if err := s.reports.Report(r.Context(), host, rep.Current, string(rep.Result), rep.Reason); err != nil {
		return err
	}
	if _, err := s.reports.Append(r.Context(), string(farmapi.HostReport), farmapi.HostReportData{Host: host, Report: rep}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// agentAuthorized checks the bearer token against the host's token.
func (s *Server) agentAuthorized(host string, r *http.Request) bool {
	return s.agents != nil && s.agents.Authorized(host, r)
}

// triggerRequest asks for an evaluation by hand.
type triggerRequest struct {
	Repo   string `json:"repo"`
	Branch string `json:"branch"` // default: the repository's deploy branch
	Commit string `json:"commit"` // a full commit id; default: the branch's head on the first remote
}

// trigger enqueues an evaluation by hand (admin token). Unlike a replayed
// webhook it always makes a new job, so a commit can be built again.
func (s *Server) trigger(w http.ResponseWriter, r *http.Request) error {
	if !httpsafe.Bearer(r, s.adminToken) {
		return httperr.ErrAdminToken
	}
	var req triggerRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		return httperr.ErrMalformedRequest.Wrap(err)
	}
	var repo *config.Repository
	for i := range s.cfg.Repositories {
		if s.cfg.Repositories[i].Name == req.Repo {
			repo = &s.cfg.Repositories[i]
		}
	}
	if repo == nil || len(repo.Remotes) == 0 {
		return httperr.ErrNoRepository
	}
	deployBranch := repo.DeployBranch
	if deployBranch == "" {
		deployBranch = "main"
	}
	if req.Branch == "" {
		req.Branch = deployBranch
	}
	if !git.ValidBranch(r.Context(), req.Branch) {
		return httperr.InvalidBranch(req.Branch)
	}
	rem := repo.Remotes[0]
	if req.Commit != "" && !git.IsCommitID(strings.ToLower(req.Commit)) {
		return httperr.InvalidCommit(req.Commit)
	}
	req.Commit = strings.ToLower(req.Commit)
	if req.Commit == "" {
		from := rem.CloneURL
		if from == "" {
			from = rem.URL
		}
		c, err := git.BranchHead(r.Context(), from, req.Branch)
		if err != nil {
			return httperr.ErrBranchHead.Wrap(err)
		}
		req.Commit = c
	}
	res, err := s.jobs.Enqueue(r.Context(), queue.EnqueueRequest{
		Kind: queue.KindEval, Key: fmt.Sprintf("%s@%s#manual-%d", repo.Name, req.Commit, s.now().UnixNano()),
		Repo: repo.Name, Branch: req.Branch, Commit: req.Commit, Deploy: req.Branch == deployBranch,
		Remote: queue.Remote{Forge: string(rem.Forge), URL: rem.URL, FullName: forge.FullName(rem.URL)},
	})
	if err != nil {
		return err
	}
	httperr.WriteJSON(w, http.StatusAccepted, farmapi.EnqueueResponse{
		Job: res.JobID, Commit: req.Commit, Created: res.Created, Late: res.Late, Superseded: res.Superseded,
	})
	return nil
}
