package dashboard

import (
	"context"
	"html/template"
	"net/http"
	"time"

	"github.com/homelab-farm/farm/internal/server/httperr"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/svgplot"
)

// CacheHistory is what the cache page reads: the cache's sizes after each
// collection since a time, the last collections and the per-host bytes
// (*state.Store).
type CacheHistory interface {
	CacheHistory(ctx context.Context, since time.Time, limit int) (state.CacheHistory, error)
}

// What the cache page shows.
const (
	// CacheWeeks is how far back the growth plot goes.
	CacheWeeks = 8
	// CacheCollections is how many of the last collections are listed.
	CacheCollections = 20
)

// CacheSummary is the cache page's content, and GET /api/cache's body.
type CacheSummary struct {
	// Measured is when the size was measured (the end of the last
	// successful collection); zero when no collection succeeded yet.
	Measured time.Time `json:"measured,omitzero"`
	Objects  int64     `json:"objects"`
	Bytes    int64     `json:"bytes"`
	state.CacheHistory
}

// ErrNoCacheHistory answers the cache page and GET /api/cache of a builder
// that keeps no collection history.
var ErrNoCacheHistory = httperr.ErrNotFound

// Summary reads what the cache page shows, at now.
func Summary(ctx context.Context, h CacheHistory, now time.Time) (CacheSummary, error) {
	hist, err := h.CacheHistory(ctx, now.AddDate(0, 0, -7*CacheWeeks), CacheCollections)
	if err != nil {
		return CacheSummary{}, err
	}
	s := CacheSummary{CacheHistory: hist}
	for _, c := range hist.Last { // newest first
		if c.Error == "" {
			s.Measured, s.Objects, s.Bytes = c.Started.Add(c.Duration), c.CacheObjects, c.CacheBytes
			break
		}
	}
	if s.Sizes == nil {
		s.Sizes = []state.SizePoint{}
	}
	if s.Last == nil {
		s.Last = []state.Collection{}
	}
	if s.Hosts == nil {
		s.Hosts = []state.HostBytes{}
	}
	return s, nil
}

// cachePage is the cache template's data.
type cachePage struct {
	CacheSummary
	Plot template.HTML // svgplot's SVG: every text in it is escaped
}

// Cache renders the cache page: its size, its growth over the last weeks
// as an SVG plot drawn here (no script), the last collections and the
// bytes each host's kept generations hold.
func (d *Dashboard) Cache(w http.ResponseWriter, r *http.Request) error {
	if d.CacheHistory == nil {
		return ErrNoCacheHistory
	}
	s, err := Summary(r.Context(), d.CacheHistory, d.clock())
	if err != nil {
		return err
	}
	p := svgplot.Plot{Title: "cache size after each collection", Label: svgplot.Bytes,
		Series: []svgplot.Series{{Name: "bytes"}}}
	for _, pt := range s.Sizes {
		p.Series[0].Points = append(p.Series[0].Points, svgplot.Point{Time: pt.Time, Value: float64(pt.Bytes)})
	}
	// svgplot escapes every text it writes; its output is markup.
	plot := template.HTML(p.SVG()) //nolint:gosec // escaped by svgplot
	return d.render(w, "cache", page{Title: "Cache", Nav: "cache", Data: cachePage{CacheSummary: s, Plot: plot}})
}
