package cache

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// NewHandler serves a cache read-only over HTTP, the way Nix's HTTP binary
// cache client reads it: GET and HEAD of nix-cache-info, <hash>.narinfo,
// nar/<file> and log/<drv>. Mount it with the prefix stripped
// (http.StripPrefix("/nix-cache", h)).
func NewHandler(b Backend) http.Handler {
	return &handler{b: b}
}

type handler struct{ b Backend }

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
	_, _ = io.Copy(w, rc)
}

// servable reports whether key is one of the cache's public objects.
func servable(key string) bool {
	if key == "nix-cache-info" {
		return true
	}
	if strings.Contains(key, "..") || strings.HasPrefix(key, ".") {
		return false
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
