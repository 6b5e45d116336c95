package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/file"
	"github.com/homelab-farm/farm/internal/testenv"
)

// TestCacheServe: `builder cache serve` answers with nosniff everywhere,
// 404 for keys no object can have, and refuses a stall timeout of zero.
func TestCacheServe(t *testing.T) {
	dir := t.TempDir()
	b, err := file.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(context.Background(), "nix-cache-info", strings.NewReader(cache.CacheInfo), -1); err != nil {
		t.Fatal(err)
	}
	env := mapEnv(map[string]string{})
	if err := runCacheServe(context.Background(), []string{"--cache", "file://" + dir, "--listen", "127.0.0.1:0", "--stall-timeout", "0s"},
		env, io.Discard, io.Discard); err == nil {
		t.Error("cache serve with --stall-timeout 0s started")
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := newLogWatcher()
	errc := make(chan error, 1)
	go func() {
		errc <- runCacheServe(ctx, []string{"--cache", "file://" + dir, "--listen", "127.0.0.1:0", "--stall-timeout", "5s"}, env, out, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("cache serve: %v", err)
		}
	})
	addrRE := regexp.MustCompile(`at (http://\S+)/nix-cache/`)
	var base string
	testenv.Eventually(t, 10*time.Second, func() bool {
		if m := addrRE.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
		}
		return base != ""
	}, "cache serve to listen")
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/nix-cache/nix-cache-info", http.StatusOK},
		{"/nix-cache/nar/a%5cb", http.StatusNotFound},
		{"/nix-cache/log/%00", http.StatusNotFound},
		{"/elsewhere", http.StatusNotFound},
	} {
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: %d, X-Content-Type-Options %q; want %d with nosniff",
				tc.path, resp.StatusCode, resp.Header.Get("X-Content-Type-Options"), tc.want)
		}
	}
}
