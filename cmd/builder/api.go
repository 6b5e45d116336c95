package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/homelab-farm/farm/internal/agent"
	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/git"
	"github.com/homelab-farm/farm/internal/hostname"
	"github.com/homelab-farm/farm/internal/httpsafe"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/safepath"
	"github.com/homelab-farm/farm/internal/secretfile"
	"github.com/homelab-farm/farm/internal/state"
)

// farmAPI serves what the pipeline produces: evaluations with their
// targets, build logs, hosts with their manifests, agent reports, the event
// stream, and manual triggers.
type farmAPI struct {
	cfg        *config.Config
	q          queue.Queue
	state      *state.Store
	logDir     string
	adminToken []byte // nil: manual triggers are refused
	// agentTokens is a directory with one file per host holding the token
	// that host's agent reports with; "" refuses every report.
	agentTokens string
	now         func() time.Time
	// streams bounds the open event and log-follow streams (nil: no bound);
	// stall bounds each write of a stream or log (0: no deadline at all).
	streams *httpsafe.Slots
	stall   time.Duration
	// currentManifest renews a host's stored manifest when due (see
	// pipeline.CurrentManifest); nil serves it as stored.
	currentManifest func(ctx context.Context, h state.Host) ([]byte, error)
}

// keepAlive is how often an idle event stream gets a comment line, so that
// proxies and clients see the connection is alive.
const keepAlive = 15 * time.Second

// events streams the event log as Server-Sent Events, starting after the
// Last-Event-ID header (or ?after=N): a client that reconnects with the
// last id it saw misses nothing and gets nothing twice.
func (a *farmAPI) events(w http.ResponseWriter, r *http.Request) error {
	after, err := lastEventID(r)
	if err != nil {
		return errorf(http.StatusBadRequest, "Last-Event-ID must be a number", err)
	}
	release, err := openStream(a.streams)
	if err != nil {
		return err
	}
	defer release()
	sw := httpsafe.NewWriter(w, a.stall)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(sw, "retry: 2000\n\n"); err != nil {
		return err
	}
	if err := sw.Flush(); err != nil {
		return err
	}
	ctx := r.Context()
	for {
		changed := a.state.Changed() // before reading, so no append is missed
		evs, err := a.state.EventsAfter(ctx, after, 500)
		if err != nil {
			return nil // the stream has started: nothing more to tell the client
		}
		for _, ev := range evs {
			if _, err := fmt.Fprintf(sw, "id: %d\nevent: %s\ndata: %s\n\n", ev.ID, ev.Type, eventJSON(ev)); err != nil {
				return err // a client gone or stalled past the deadline
			}
			after = ev.ID
		}
		if len(evs) > 0 {
			if err := sw.Flush(); err != nil {
				return err
			}
			if len(evs) == 500 {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-time.After(keepAlive):
			if _, err := io.WriteString(sw, ": keep-alive\n\n"); err != nil {
				return err
			}
			if err := sw.Flush(); err != nil {
				return err
			}
		}
	}
}

func lastEventID(r *http.Request) (int64, error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("after")
	}
	if v == "" {
		return 0, nil
	}
	return strconv.ParseInt(v, 10, 64)
}

func eventJSON(ev state.Event) []byte {
	b, _ := json.Marshal(struct {
		ID   int64           `json:"id"`
		Time time.Time       `json:"time"`
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}{ev.ID, ev.Time, ev.Type, ev.Data})
	return b
}

// evaluationView is an evaluation with its targets, as the API shows it.
type evaluationView struct {
	state.Evaluation
	Targets []state.Target `json:"targets"`
}

// evaluationTargets shows the evaluation of a job (the id is the job's, as
// in /api/evaluations/{id}) with its targets.
func (a *farmAPI) evaluationTargets(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		return errorf(http.StatusBadRequest, "bad evaluation id", err)
	}
	ev, err := a.state.EvaluationByJob(r.Context(), id)
	if errors.Is(err, state.ErrNotFound) {
		return errorf(http.StatusNotFound, "no such evaluation", nil)
	}
	if err != nil {
		return err
	}
	ts, err := a.state.Targets(r.Context(), ev.ID)
	if err != nil {
		return err
	}
	if ts == nil {
		ts = []state.Target{} // evaluating: hosts not known yet
	}
	writeJSON(w, http.StatusOK, evaluationView{Evaluation: ev, Targets: ts})
	return nil
}

func (a *farmAPI) target(w http.ResponseWriter, r *http.Request) error {
	t, err := a.targetFrom(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (a *farmAPI) targetFrom(r *http.Request) (state.Target, error) {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		return state.Target{}, errorf(http.StatusBadRequest, "bad target id", err)
	}
	t, err := a.state.Target(r.Context(), id)
	if errors.Is(err, state.ErrNotFound) {
		return state.Target{}, errorf(http.StatusNotFound, "no such target", nil)
	}
	return t, err
}

// targetLog sends a target's build log. With ?follow=1 it keeps sending
// what the build writes until the build ends.
func (a *farmAPI) targetLog(w http.ResponseWriter, r *http.Request) error {
	t, err := a.targetFrom(r)
	if err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(a.logDir, strconv.FormatInt(t.ID, 10)+".log"))
	if errors.Is(err, os.ErrNotExist) {
		if t.State == state.TargetFailed && t.Reason != "" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(w, t.Reason) // an evaluation failure has no build log
			return nil
		}
		return errorf(http.StatusNotFound, "no build log for this target", nil)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	follow := r.URL.Query().Get("follow") == "1"
	if follow {
		release, err := openStream(a.streams)
		if err != nil {
			return err
		}
		defer release()
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	sw := httpsafe.NewWriter(w, a.stall)
	if !follow {
		_, err := io.Copy(sw, f)
		return err
	}
	ctx := r.Context()
	for {
		if _, err := io.Copy(sw, f); err != nil {
			return err // a client gone or stalled past the deadline
		}
		if err := sw.Flush(); err != nil {
			return err
		}
		cur, err := a.state.Target(ctx, t.ID)
		if err != nil || (cur.State != state.TargetBuilding && cur.State != state.TargetPending) {
			_, err := io.Copy(sw, f) // what was written before the state changed
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (a *farmAPI) hosts(w http.ResponseWriter, r *http.Request) error {
	hs, err := a.state.Hosts(r.Context())
	if err != nil {
		return err
	}
	if hs == nil {
		hs = []state.Host{}
	}
	writeJSON(w, http.StatusOK, hs)
	return nil
}

func (a *farmAPI) host(w http.ResponseWriter, r *http.Request) error {
	h, err := a.state.Host(r.Context(), mux.Vars(r)["host"])
	if errors.Is(err, state.ErrNotFound) {
		return errorf(http.StatusNotFound, "no such host", nil)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}

// manifest serves a host's signed deploy manifest, renewed first when it
// is close to its expiry. It carries no secret: the agent trusts it for its
// signature, not for where it came from.
func (a *farmAPI) manifest(w http.ResponseWriter, r *http.Request) error {
	h, err := a.state.Host(r.Context(), mux.Vars(r)["host"])
	if errors.Is(err, state.ErrNotFound) || (err == nil && len(h.Manifest) == 0) {
		return errorf(http.StatusNotFound, "no deploy manifest for this host", nil)
	}
	if err != nil {
		return err
	}
	body := []byte(h.Manifest)
	if a.currentManifest != nil {
		body, err = a.currentManifest(r.Context(), h)
		if errors.Is(err, pipeline.ErrManifestExpired) {
			w.Header().Set("Retry-After", "60")
			return errorf(http.StatusServiceUnavailable, "the host's manifest has expired and could not be renewed yet", err)
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
func (a *farmAPI) hostSeq(w http.ResponseWriter, r *http.Request) error {
	host := mux.Vars(r)["host"]
	if !a.agentAuthorized(host, r) {
		return errorf(http.StatusUnauthorized, "bad or missing agent token", nil)
	}
	h, err := a.state.Host(r.Context(), host)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, struct {
		Seq uint64 `json:"seq"`
	}{h.DesiredSeq})
	return nil
}

// Report is what an agent tells the builder after a check or an update.
type Report struct {
	Current string `json:"current"` // the store path the host runs now
	Result  string `json:"result"`  // "switched", "up-to-date", "rolled back", "failed"
	Reason  string `json:"reason,omitempty"`
	Seq     uint64 `json:"seq,omitempty"` // the manifest applied, if any
}

// reportResults are the results an agent reports; anything else is refused.
var reportResults = map[string]bool{
	agent.ResultSwitched: true, agent.ResultUpToDate: true, agent.ResultRolledBack: true, agent.ResultFailed: true,
}

// EventHostReport is appended for every agent report.
const EventHostReport = "host.report"

func (a *farmAPI) report(w http.ResponseWriter, r *http.Request) error {
	host := mux.Vars(r)["host"]
	if !a.agentAuthorized(host, r) {
		return errorf(http.StatusUnauthorized, "bad or missing agent token", nil)
	}
	var rep Report
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&rep); err != nil {
		return errorf(http.StatusBadRequest, "malformed report", err)
	}
	if rep.Result == "" || (rep.Current != "" && !strings.HasPrefix(rep.Current, "/nix/store/")) {
		return errorf(http.StatusBadRequest, "a report needs a result and a store path", nil)
	}
	if !reportResults[rep.Result] {
		return errorf(http.StatusBadRequest, "unknown report result "+strconv.Quote(rep.Result), nil)
	}
	if err := a.state.Report(r.Context(), host, rep.Current, rep.Result, rep.Reason); err != nil {
		return err
	}
	if _, err := a.state.Append(r.Context(), EventHostReport, map[string]any{
		"host": host, "current": rep.Current, "result": rep.Result, "reason": rep.Reason, "seq": rep.Seq,
	}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// agentAuthorized checks the bearer token against the host's token file.
func (a *farmAPI) agentAuthorized(host string, r *http.Request) bool {
	if a.agentTokens == "" || !hostname.Valid(host) {
		return false
	}
	file, err := safepath.Join(a.agentTokens, host)
	if err != nil {
		return false
	}
	want, err := secretfile.Read(file, "agent token")
	if err != nil {
		return false
	}
	return httpsafe.Bearer(r, []byte(want))
}

// triggerRequest asks for an evaluation by hand.
type triggerRequest struct {
	Repo   string `json:"repo"`
	Branch string `json:"branch"` // default: the repository's deploy branch
	Commit string `json:"commit"` // a full commit id; default: the branch's head on the first remote
}

// trigger enqueues an evaluation by hand (admin token). Unlike a replayed
// webhook it always makes a new job, so a commit can be built again.
func (a *farmAPI) trigger(w http.ResponseWriter, r *http.Request) error {
	if !httpsafe.Bearer(r, a.adminToken) {
		return errorf(http.StatusUnauthorized, "bad or missing admin token", nil)
	}
	var req triggerRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		return errorf(http.StatusBadRequest, "malformed request", err)
	}
	var repo *config.Repository
	for i := range a.cfg.Repositories {
		if a.cfg.Repositories[i].Name == req.Repo {
			repo = &a.cfg.Repositories[i]
		}
	}
	if repo == nil || len(repo.Remotes) == 0 {
		return errorf(http.StatusNotFound, "no such repository", nil)
	}
	deployBranch := repo.DeployBranch
	if deployBranch == "" {
		deployBranch = "main"
	}
	if req.Branch == "" {
		req.Branch = deployBranch
	}
	if !git.ValidBranch(r.Context(), req.Branch) {
		return errorf(http.StatusBadRequest, fmt.Sprintf("branch %q is not a valid branch name", req.Branch), nil)
	}
	rem := repo.Remotes[0]
	if req.Commit != "" && !git.IsCommitID(strings.ToLower(req.Commit)) {
		return errorf(http.StatusBadRequest, fmt.Sprintf("commit %q is not a full commit id (40 or 64 hex digits); to build a branch's head, give the branch and no commit", req.Commit), nil)
	}
	req.Commit = strings.ToLower(req.Commit)
	if req.Commit == "" {
		from := rem.CloneURL
		if from == "" {
			from = rem.URL
		}
		c, err := git.BranchHead(r.Context(), from, req.Branch)
		if err != nil {
			return errorf(http.StatusBadGateway, "cannot resolve the branch head", err)
		}
		req.Commit = c
	}
	res, err := a.q.Enqueue(r.Context(), queue.EnqueueRequest{
		Kind: queue.KindEval, Key: fmt.Sprintf("%s@%s#manual-%d", repo.Name, req.Commit, a.now().UnixNano()),
		Repo: repo.Name, Branch: req.Branch, Commit: req.Commit, Deploy: req.Branch == deployBranch,
		Remote: queue.Remote{Forge: string(rem.Forge), URL: rem.URL, FullName: fullName(rem.URL)},
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"job_id": res.JobID, "commit": req.Commit})
	return nil
}

// fullName is "owner/name" of a forge repository URL.
func fullName(u string) string {
	parts := strings.Split(strings.TrimSuffix(strings.TrimSuffix(u, "/"), ".git"), "/")
	if len(parts) < 2 {
		return u
	}
	return parts[len(parts)-2] + "/" + parts[len(parts)-1]
}
