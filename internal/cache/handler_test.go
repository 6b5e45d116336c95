package cache_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/file"
)

func TestHandler(t *testing.T) {
	ctx := context.Background()
	b, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(key, body string) {
		if err := b.Put(ctx, key, strings.NewReader(body), int64(len(body))); err != nil {
			t.Fatal(err)
		}
	}
	put("nix-cache-info", cache.CacheInfo)
	put("abcd.narinfo", "StorePath: x\n")
	put("nar/abcd.nar.zst", "nar bytes")
	drv := "/nix/store/lpjpdd3n3m4aqnkgnl86a9d3dz3rh2pv-b.drv"
	if err := cache.PutLog(ctx, b, drv, strings.NewReader("build log\n"), -1); err != nil {
		t.Fatalf("PutLog: %v", err)
	}
	if err := cache.PutLog(ctx, b, "/nix/store/not-a-drv", strings.NewReader("x"), -1); err == nil {
		t.Errorf("PutLog of a non-derivation path succeeded")
	}
	mux := http.NewServeMux()
	mux.Handle("/nix-cache/", http.StripPrefix("/nix-cache", cache.NewHandler(b)))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	cases := []struct {
		method, path string
		status       int
		body, ctype  string
	}{
		{"GET", "/nix-cache/nix-cache-info", 200, cache.CacheInfo, "text/x-nix-cache-info"},
		{"GET", "/nix-cache/abcd.narinfo", 200, "StorePath: x\n", "text/x-nix-narinfo"},
		{"HEAD", "/nix-cache/abcd.narinfo", 200, "", "text/x-nix-narinfo"},
		{"GET", "/nix-cache/nar/abcd.nar.zst", 200, "nar bytes", "application/x-nix-nar"},
		{"GET", "/nix-cache/log/lpjpdd3n3m4aqnkgnl86a9d3dz3rh2pv-b.drv", 200, "build log\n", "text/plain; charset=utf-8"},
		{"GET", "/nix-cache/missing.narinfo", 404, "", ""},
		{"HEAD", "/nix-cache/missing.narinfo", 404, "", ""},
		{"GET", "/nix-cache/nar/.tmp-1234", 404, "", ""},
		{"GET", "/nix-cache/other/file", 404, "", ""},
		{"GET", "/nix-cache/nar/..%2fabcd.narinfo", 404, "", ""},
		{"POST", "/nix-cache/abcd.narinfo", 405, "", ""},
		{"DELETE", "/nix-cache/abcd.narinfo", 405, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status != 200 {
				return
			}
			if string(body) != tc.body {
				t.Errorf("body = %q, want %q", body, tc.body)
			}
			if got := resp.Header.Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type = %q, want %q", got, tc.ctype)
			}
		})
	}
	// Nothing was changed by the refused methods.
	if _, err := b.Stat(ctx, "abcd.narinfo"); err != nil {
		t.Errorf("narinfo gone after refused requests: %v", err)
	}
}

func TestContentType(t *testing.T) {
	tests := []struct{ key, want string }{
		{"nix-cache-info", "text/x-nix-cache-info"},
		{"0123abcd.narinfo", "text/x-nix-narinfo"},
		{"nar/1abc.nar.zst", "application/x-nix-nar"},
		{"nar/1abc.nar.xz", "application/x-nix-nar"},
		{"nar/1abc.nar", "application/x-nix-nar"},
		{"log/abc-hello.drv", "text/plain; charset=utf-8"},
		{"0123abcd.ls", "application/json"},
		{"other", "application/octet-stream"},
	}
	for _, tt := range tests {
		if got := cache.ContentType(tt.key); got != tt.want {
			t.Errorf("ContentType(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}
