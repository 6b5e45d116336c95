package cache

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/homelab-farm/farm/internal/httpsafe"
)

// DefaultStallTimeout is how long one write of a download may block before
// the client is taken to have stopped reading.
const DefaultStallTimeout = 60 * time.Second

// HandlerOptions tune NewHandlerWith.
type HandlerOptions struct {
	// StallTimeout bounds each write to the client (0: DefaultStallTimeout);
	// a download as a whole has no time limit, so a NAR of any size comes
	// through at any steady pace, and a client that stops reading is cut.
	StallTimeout time.Duration
}

// NewHandler serves a cache read-only over HTTP, the way Nix's HTTP binary
// cache client reads it: GET and HEAD of nix-cache-info, <hash>.narinfo,
// nar/<file> and log/<drv>. Mount it with the prefix stripped
// (http.StripPrefix("/nix-cache", h)). A key CheckKey refuses is a 404.
func NewHandler(b Backend) http.Handler {
	return NewHandlerWith(b, HandlerOptions{})
}

// NewHandlerWith is NewHandler with options.
func NewHandlerWith(b Backend, o HandlerOptions) http.Handler {
	if o.StallTimeout <= 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	return &handler{b: b, stall: o.StallTimeout}
}

type handler struct {
	b     Backend
	stall time.Duration
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	key := strings.TrimPrefix(r.URL.Path, "/")
	if !servable(key) {
		http.NotFound(w, r)
		return
	}
	size, err := h.b.Stat(r.Context(), key)
	if errors.Is(err, ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, "cache backend unavailable", http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", ContentType(key))
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	if strings.HasPrefix(key, "nar/") {
		// NARs are named by their hash: they never change.
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	if r.Method == http.MethodHead {
		return
	}
	rc, err := h.b.Get(r.Context(), key)
	if errors.Is(err, ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, "cache backend unavailable", http.StatusBadGateway)
		return
	}
	defer rc.Close()
	// Only Read of rc, so that the copy goes through the deadline writer
	// in chunks rather than through a WriterTo of the backend.
	_, _ = io.CopyBuffer(httpsafe.NewWriter(w, h.stall), struct{ io.Reader }{rc}, make([]byte, 32<<10))
}

// servable reports whether key is one of the cache's public objects.
func servable(key string) bool {
	if CheckKey(key) != nil {
		return false
	}
	if key == "nix-cache-info" {
		return true
	}
	dir, name, nested := strings.Cut(key, "/")
	if !nested {
		return strings.HasSuffix(key, ".narinfo") && !strings.Contains(key, "/")
	}
	if strings.Contains(name, "/") || name == "" || strings.HasPrefix(name, ".") {
		return false
	}
	return dir == "nar" || dir == "log"
}

// ContentType is what Nix's own S3 and HTTP caches serve for a key.
func ContentType(key string) string {
	switch {
	case key == "nix-cache-info":
		return "text/x-nix-cache-info"
	case strings.HasSuffix(key, ".narinfo"):
		return "text/x-nix-narinfo"
	case strings.HasPrefix(key, "log/"):
		return "text/plain; charset=utf-8"
	case strings.HasSuffix(key, ".ls"):
		return "application/json"
	case strings.HasPrefix(key, "nar/") || strings.Contains(key, ".nar"):
		return "application/x-nix-nar"
	}
	return "application/octet-stream"
}
