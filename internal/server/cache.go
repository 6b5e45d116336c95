package server

import (
	"net/http"

	"github.com/homelab-farm/farm/internal/server/dashboard"
	"github.com/homelab-farm/farm/internal/server/httperr"
)

// cacheSummary answers GET /api/cache: what the cache page shows, as JSON
// (dashboard.CacheSummary).
func (s *Server) cacheSummary(w http.ResponseWriter, r *http.Request) error {
	if s.cacheHistory == nil {
		return dashboard.ErrNoCacheHistory
	}
	sum, err := dashboard.Summary(r.Context(), s.cacheHistory, s.now())
	if err != nil {
		return err
	}
	httperr.WriteJSON(w, http.StatusOK, sum)
	return nil
}
