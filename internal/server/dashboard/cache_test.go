package dashboard_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/server"
	"github.com/homelab-farm/farm/internal/server/dashboard"
	"github.com/homelab-farm/farm/internal/state"
)

// cacheRoutes is the route table over a state holding three collections
// (two successful, growing; the last failed with a hostile message) and,
// with history, the collection history.
func cacheRoutes(t *testing.T, history bool) http.Handler {
	t.Helper()
	ctx := context.Background()
	st, err := state.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now().Round(time.Second)
	for _, c := range []state.Collection{
		{Instance: "builder-a", Started: now.AddDate(0, 0, -100), Duration: time.Second, CacheObjects: 1, CacheBytes: 1}, // before the plot
		{Instance: "builder-a", Started: now.AddDate(0, 0, -14), Duration: 3 * time.Second, FreedObjects: 4, FreedBytes: 4096,
			KeptPaths: 10, CacheObjects: 20, CacheBytes: 3 << 20, Hosts: []state.HostBytes{{Host: "alpha", Paths: 7, NarBytes: 9 << 20, FileBytes: 2 << 20}}},
		{Instance: "builder-b", Started: now.AddDate(0, 0, -7), Duration: 5 * time.Second, FreedObjects: 2, FreedBytes: 2048,
			KeptPaths: 12, CacheObjects: 24, CacheBytes: 5 << 20, Hosts: []state.HostBytes{
				{Host: "alpha", Paths: 8, NarBytes: 10 << 20, FileBytes: 3 << 20}, {Host: "bravo", Paths: 3, NarBytes: 1 << 20, FileBytes: 512 << 10}}},
		{Instance: "<b>x</b>", Started: now.AddDate(0, 0, -1), Duration: time.Second, Error: `delete nar/<script>alert(1)</script>: denied`},
	} {
		if _, err := st.RecordCollection(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	deps := server.Deps{Config: config.Default(), State: st, Reports: st, Jobs: noJobs{}, Log: slog.New(slog.NewTextHandler(t.Output(), nil))}
	if history {
		deps.CacheHistory = st
	}
	return server.New(deps).Handler()
}

func getPath(t *testing.T, h http.Handler, path string) (int, http.Header, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Header(), rec.Body.String()
}

// TestCachePage: /cache shows the size measured by the last successful
// collection, the growth as an inline SVG (no script of its own), the last
// collections with their errors escaped, and each host's kept bytes; the
// index links to it.
func TestCachePage(t *testing.T) {
	t.Parallel()
	h := cacheRoutes(t, true)
	code, hdr, body := getPath(t, h, "/cache")
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("/cache = %d %s\n%s", code, hdr.Get("Content-Type"), body)
	}
	for _, want := range []string{
		"<strong>5 MiB</strong> in <strong>24</strong> objects",
		`<figure id="cache-growth"><svg`,
		"&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;b&gt;x&lt;/b&gt;",
		"4 KiB <small>(4 objects)</small>", "2 KiB <small>(2 objects)</small>",
		`<tr data-host="alpha">`, "<td>8</td>\n<td>3 MiB</td>\n<td>10 MiB</td>",
		`<tr data-host="bravo">`, "<td>512 KiB</td>",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/cache lacks %q", want)
		}
	}
	for _, bad := range []string{"<script>alert", "<b>x</b>", "<td>7</td>"} {
		if strings.Contains(body, bad) {
			t.Errorf("/cache contains %q", bad)
		}
	}
	fig := body[strings.Index(body, `<figure id="cache-growth">`):]
	fig = fig[:strings.Index(fig, "</figure>")]
	if strings.Contains(fig, "<script") || strings.Contains(fig, " on") {
		t.Errorf("plot carries script: %s", fig)
	}
	// Two successful collections in the last weeks: two points, the
	// one of 100 days ago left out.
	if n := strings.Count(fig, "<circle"); n != 2 {
		t.Errorf("plot has %d points, want 2:\n%s", n, fig)
	}
	if _, _, index := getPath(t, h, "/"); !strings.Contains(index, `<a href="/cache"`) {
		t.Errorf("the index does not link /cache")
	}
}

// TestCacheAPI: GET /api/cache is the page's content as JSON.
func TestCacheAPI(t *testing.T) {
	t.Parallel()
	code, hdr, body := getPath(t, cacheRoutes(t, true), "/api/cache")
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("/api/cache = %d %s\n%s", code, hdr.Get("Content-Type"), body)
	}
	var got dashboard.CacheSummary
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Objects != 24 || got.Bytes != 5<<20 || got.Measured.IsZero() {
		t.Errorf("size = %d objects, %d bytes, measured %s", got.Objects, got.Bytes, got.Measured)
	}
	if len(got.Sizes) != 2 || got.Sizes[0].Bytes != 3<<20 || got.Sizes[1].Bytes != 5<<20 {
		t.Errorf("sizes = %+v, want the two of the last weeks, oldest first", got.Sizes)
	}
	if len(got.Last) != 4 || !strings.Contains(got.Last[0].Error, "<script>") || got.Last[1].FreedObjects != 2 {
		t.Errorf("last = %+v, want 4 newest first (JSON carries the text as it is)", got.Last)
	}
	if len(got.Hosts) != 2 || got.Hosts[0].Host != "alpha" || got.Hosts[0].FileBytes != 3<<20 || got.Hosts[1].Host != "bravo" {
		t.Errorf("hosts = %+v", got.Hosts)
	}
}

// A builder without a collection history answers 404 on both.
func TestCacheWithoutHistory(t *testing.T) {
	t.Parallel()
	h := cacheRoutes(t, false)
	for _, p := range []string{"/cache", "/api/cache"} {
		if code, _, body := getPath(t, h, p); code != http.StatusNotFound {
			t.Errorf("%s = %d %s, want 404", p, code, body)
		}
	}
}
