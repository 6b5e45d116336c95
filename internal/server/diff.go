package server

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/homelab-farm/farm/internal/server/dashboard"
	"github.com/homelab-farm/farm/internal/server/httperr"
	"github.com/homelab-farm/farm/internal/state"
)

// Diffs reads the closure diffs the pipeline recorded per target
// (*state.Store); see dashboard.Diffs.
type Diffs interface {
	dashboard.Diffs
}

// targetDiff is GET /api/targets/{id}/diff: farmapi.TargetDiff, what the
// target's closure changes against what its host runs and against the
// previous build; a diff not recorded is null, one that failed carries its
// reason.
func (s *Server) targetDiff(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		return httperr.ErrBadTargetID.Wrap(err)
	}
	var diffs dashboard.Diffs = dashboard.NoDiffs{}
	if s.diffs != nil {
		diffs = s.diffs
	}
	d, err := dashboard.TargetDiff(r.Context(), s.state, diffs, id)
	if errors.Is(err, state.ErrNotFound) {
		return httperr.ErrNoTarget
	}
	if err != nil {
		return err
	}
	httperr.WriteJSON(w, http.StatusOK, d)
	return nil
}
