package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/httpsafe"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/rollout"
	"github.com/homelab-farm/farm/internal/server/httperr"
	"github.com/homelab-farm/farm/internal/state"
)

// Rollouts drives the rollouts (*pipeline.Rollouts): agents' reports move
// them on, admins list, resume, abort them and roll the fleet back. Safe
// for concurrent use. Unknown ids are errors wrapping state.ErrNotFound;
// Resume of a rollout that is not halted wraps rollout.ErrNotHalted, Abort
// of an ended one rollout.ErrEnded; Rollback refuses with errors wrapping
// pipeline.ErrRollbackRefused or pipeline.ErrClosureMissing, whose text is
// meant for the admin.
type Rollouts interface {
	Report(ctx context.Context, host string, rep farmapi.Report) error
	Rollout(ctx context.Context, id int64) (state.Rollout, error)
	ActiveRollouts(ctx context.Context) ([]state.Rollout, error)
	Resume(ctx context.Context, id int64) (state.Rollout, error)
	Abort(ctx context.Context, id int64, reason string) (state.Rollout, error)
	Rollback(ctx context.Context, req farmapi.RollbackRequest) (state.Rollout, error)
	RecentRollouts(ctx context.Context, repo string, limit int) ([]state.Rollout, error)
}

var _ Rollouts = (*pipeline.Rollouts)(nil)

// reportToRollouts hands an agent's report to the rollouts, after the
// host's state was recorded and before the report's event, so that a halt
// it causes precedes the host report in the event log. A failure is logged,
// not answered: the report itself is recorded, and the gate timeout still
// halts a wave that waits for it.
func (s *Server) reportToRollouts(ctx context.Context, host string, rep farmapi.Report) {
	if s.rollouts == nil {
		return
	}
	if err := s.rollouts.Report(ctx, host, rep); err != nil {
		s.log.Warn("rollout report", "host", host, logErr, err)
	}
}

// listRollouts answers the active rollouts, oldest first (admin token).
func (s *Server) listRollouts(w http.ResponseWriter, r *http.Request) error {
	if err := s.rolloutAdmin(r); err != nil {
		return err
	}
	active, err := s.rollouts.ActiveRollouts(r.Context())
	if err != nil {
		return err
	}
	out := make([]farmapi.Rollout, 0, len(active))
	for _, a := range active {
		out = append(out, pipeline.APIRollout(a))
	}
	httperr.WriteJSON(w, http.StatusOK, out)
	return nil
}

// getRollout answers one rollout (admin token).
func (s *Server) getRollout(w http.ResponseWriter, r *http.Request) error {
	if err := s.rolloutAdmin(r); err != nil {
		return err
	}
	id, err := rolloutID(r)
	if err != nil {
		return err
	}
	ro, err := s.rollouts.Rollout(r.Context(), id)
	if err != nil {
		return rolloutError(err)
	}
	httperr.WriteJSON(w, http.StatusOK, pipeline.APIRollout(ro))
	return nil
}

// rollback starts a fleet rollback (admin token): 201 with the new
// rollout, or for the dashboard's form (a form post with the fields to,
// repo, host…, and the token) a redirect to the new rollout's page. A
// refused rollback starts nothing.
func (s *Server) rollback(w http.ResponseWriter, r *http.Request) error {
	if err := s.rolloutAdminBy(r, true); err != nil {
		return err
	}
	// Without the bearer token it was the form's token field, and the form
	// is parsed. With it, an API client: its body is JSON whatever its
	// Content-Type says (curl -d says a form's).
	form := !httpsafe.Bearer(r, s.adminToken)
	var req farmapi.RollbackRequest
	if form {
		req = farmapi.RollbackRequest{To: r.PostForm.Get("to"), Repo: r.PostForm.Get("repo"), Hosts: r.PostForm["host"]}
	} else if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		return httperr.ErrMalformedRequest.Wrap(err)
	}
	ro, err := s.rollouts.Rollback(r.Context(), req)
	if err != nil {
		return rolloutError(err)
	}
	if form {
		http.Redirect(w, r, "/rollouts/"+strconv.FormatInt(ro.ID, 10), http.StatusSeeOther)
		return nil
	}
	httperr.WriteJSON(w, http.StatusCreated, pipeline.APIRollout(ro))
	return nil
}

// resumeRollout continues a halted rollout with its next wave (admin
// token); 409 unless it is halted.
func (s *Server) resumeRollout(w http.ResponseWriter, r *http.Request) error {
	return s.rolloutAction(w, r, func(ctx context.Context, id int64) (state.Rollout, error) {
		return s.rollouts.Resume(ctx, id)
	})
}

// abortRollout ends an active rollout (admin token); 409 if it ended.
func (s *Server) abortRollout(w http.ResponseWriter, r *http.Request) error {
	return s.rolloutAction(w, r, func(ctx context.Context, id int64) (state.Rollout, error) {
		return s.rollouts.Abort(ctx, id, "")
	})
}

// rolloutAction runs an admin's action on the rollout of the path and
// answers the rollout as it is then: JSON, or for a dashboard form (a
// form post) a redirect to the rollout's page.
func (s *Server) rolloutAction(w http.ResponseWriter, r *http.Request, act func(context.Context, int64) (state.Rollout, error)) error {
	if err := s.rolloutAdminBy(r, true); err != nil {
		return err
	}
	id, err := rolloutID(r)
	if err != nil {
		return err
	}
	ro, err := act(r.Context(), id)
	if err != nil {
		return rolloutError(err)
	}
	if isForm(r) {
		http.Redirect(w, r, "/rollouts/"+strconv.FormatInt(id, 10), http.StatusSeeOther)
		return nil
	}
	httperr.WriteJSON(w, http.StatusOK, pipeline.APIRollout(ro))
	return nil
}

// rolloutAdmin checks that rollouts run here and that the request carries
// the admin token as a bearer token.
func (s *Server) rolloutAdmin(r *http.Request) error {
	return s.rolloutAdminBy(r, false)
}

// rolloutAdminBy is rolloutAdmin that, when form is set, also takes the
// token as the "token" field of a form post (the dashboard's resume,
// abort and rollback buttons), whose fields are then in r.PostForm.
// Either way the token is in the request itself, which a cross-site form
// cannot supply: no cookie ever authorizes.
func (s *Server) rolloutAdminBy(r *http.Request, form bool) error {
	if s.rollouts == nil {
		return httperr.ErrNoRollouts
	}
	if httpsafe.Bearer(r, s.adminToken) {
		return nil
	}
	if form && r.Method == http.MethodPost && isForm(r) {
		r.Body = http.MaxBytesReader(nil, r.Body, 16<<10)
		if err := r.ParseForm(); err == nil && len(s.adminToken) > 0 && subtle.ConstantTimeCompare([]byte(r.PostForm.Get("token")), s.adminToken) == 1 {
			return nil
		}
	}
	return httperr.ErrAdminToken
}

// isForm reports whether r's body is an HTML form's.
func isForm(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/x-www-form-urlencoded"
}

func rolloutID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		return 0, httperr.ErrBadRolloutID.Wrap(err)
	}
	return id, nil
}

// rolloutError maps the rollouts' errors to what the admin is told.
func rolloutError(err error) error {
	switch {
	case errors.Is(err, state.ErrNotFound):
		return httperr.ErrNoRollout.Wrap(err)
	case errors.Is(err, rollout.ErrNotHalted):
		return httperr.ErrRolloutNotHalted.Wrap(err)
	case errors.Is(err, rollout.ErrEnded):
		return httperr.ErrRolloutEnded.Wrap(err)
	case errors.Is(err, pipeline.ErrRollbackRefused), errors.Is(err, pipeline.ErrClosureMissing):
		return httperr.RollbackRefused(err.Error()).Wrap(err)
	}
	return err
}
