package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/file"
	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/server"
)

// TestBuilderRenewsManifest drives the builder's clock: the manifest
// GET /api/hosts/{host}/manifest serves is the stored one while fresh and a
// renewal (same seq, store path and commit, a later expiry) once less than
// half of --manifest-ttl is left.
func TestBuilderRenewsManifest(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	q, err := openQueue(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	backend, err := file.Open(filepath.Join(cfg.StateDir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	f, err := newFarm(ctx, cfg, q, backend, nil, farmFlags{flakeDir: "nix", manifestTTL: 10 * time.Hour}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.state.Close()
	clock := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	f.pipeline.Now = func() time.Time { return clock }
	key, err := cache.LoadSecretKeyFile(filepath.Join(cfg.StateDir, "deploy-signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	const path = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-alpha"
	first, err := deploy.Sign(deploy.Manifest{Host: "alpha", StorePath: path, Commit: "c1", Seq: 3, IssuedAt: clock, Expires: clock.Add(10 * time.Hour)}, key)
	if err != nil {
		t.Fatal(err)
	}
	firstBody, _ := json.Marshal(first)
	if err := f.state.SetDesired(ctx, "alpha", path, "c1", 3, firstBody); err != nil {
		t.Fatal(err)
	}
	s := server.New(server.Deps{Config: cfg, Jobs: q, State: f.state, Reports: f.state, Manifests: f.pipeline, Log: log})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	get := func() []byte {
		t.Helper()
		resp, err := http.Get(srv.URL + "/api/hosts/alpha/manifest")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("manifest: %d %s", resp.StatusCode, b)
		}
		return b
	}

	clock = clock.Add(4 * time.Hour) // 6 h of 10 left
	if got := get(); string(got) != string(firstBody) {
		t.Fatalf("a fresh manifest was re-signed: %s", got)
	}
	clock = clock.Add(2 * time.Hour) // 4 h left: renewed
	var s2 deploy.Signed
	if err := json.Unmarshal(get(), &s2); err != nil {
		t.Fatal(err)
	}
	m, err := deploy.Verify(s2, []cache.PublicKey{key.Public()}, "alpha", clock, 0)
	if err != nil || m.Seq != 3 || m.StorePath != path || m.Commit != "c1" || !m.Expires.Equal(clock.Add(10*time.Hour)) {
		t.Fatalf("renewed manifest = %+v, %v; want seq 3, same path and commit, expiring %s", m, err, clock.Add(10*time.Hour))
	}
	clock = clock.Add(9 * time.Hour) // past the first expiry: the renewal is what the agent takes
	if _, err := deploy.Verify(first, []cache.PublicKey{key.Public()}, "alpha", clock, 0); err == nil {
		t.Errorf("the first manifest still verifies after its expiry")
	}
	var s3 deploy.Signed
	_ = json.Unmarshal(get(), &s3)
	if _, err := deploy.Verify(s3, []cache.PublicKey{key.Public()}, "alpha", clock, 0); err != nil {
		t.Errorf("served manifest after the first expiry: %v", err)
	}
}
