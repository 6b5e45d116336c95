package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/state"
)

// failingSigner is a signer that is down.
type failingSigner struct{}

func (failingSigner) Sign(context.Context, deploy.Manifest) (deploy.Signed, error) {
	return deploy.Signed{}, errors.New("signer unreachable")
}

// TestCurrentManifestRenews drives the builder's clock through a
// manifest's life: served as stored while fresh, renewed (same seq, path,
// commit; a later expiry) once less than half its TTL is left, never
// renewed over a newer deploy, and refused once expired when the signer is
// down.
func TestCurrentManifestRenews(t *testing.T) {
	ctx := context.Background()
	st, err := state.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, _ := cache.GenerateKey("farm-test-deploy-1")
	trusted := []cache.PublicKey{key.Public()}
	clock := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	p := &pipeline.Pipeline{State: st, Signer: deploy.KeySigner{Key: key}, ManifestTTL: 72 * time.Hour, Now: func() time.Time { return clock }}
	const path = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-alpha"

	first, err := deploy.Sign(deploy.Manifest{Host: "alpha", StorePath: path, Commit: "c1", Seq: 4,
		IssuedAt: clock, Expires: clock.Add(72 * time.Hour), Cache: "http://b/nix-cache"}, key)
	if err != nil {
		t.Fatal(err)
	}
	firstBody, _ := json.Marshal(first)
	if err := st.SetDesired(ctx, "alpha", path, "c1", 4, firstBody); err != nil {
		t.Fatal(err)
	}
	serve := func() []byte {
		t.Helper()
		h, err := st.Host(ctx, "alpha")
		if err != nil {
			t.Fatal(err)
		}
		body, err := p.CurrentManifest(ctx, h)
		if err != nil {
			t.Fatalf("CurrentManifest: %v", err)
		}
		return body
	}
	verify := func(body []byte) deploy.Manifest {
		t.Helper()
		var s deploy.Signed
		if err := json.Unmarshal(body, &s); err != nil {
			t.Fatal(err)
		}
		m, err := deploy.Verify(s, trusted, "alpha", clock, 0)
		if err != nil {
			t.Fatalf("served manifest does not verify: %v", err)
		}
		return m
	}

	clock = clock.Add(35 * time.Hour) // 37 h left: not yet
	if got := serve(); string(got) != string(firstBody) {
		t.Fatalf("fresh manifest was re-signed: %s", got)
	}

	clock = clock.Add(2 * time.Hour) // 35 h left: renewed
	m := verify(serve())
	if m.Seq != 4 || m.StorePath != path || m.Commit != "c1" || m.Cache != "http://b/nix-cache" || !m.Expires.Equal(clock.Add(72*time.Hour)) {
		t.Fatalf("renewed manifest = %+v, want seq 4, same path, commit and cache, expiring %s", m, clock.Add(72*time.Hour))
	}
	if h, _ := st.Host(ctx, "alpha"); string(h.Manifest) == string(firstBody) {
		t.Errorf("the renewal was not stored")
	}

	// Down signer: the stored manifest is served while valid, then 503.
	p.Signer = failingSigner{}
	clock = clock.Add(50 * time.Hour) // 22 h left
	if m := verify(serve()); m.Seq != 4 {
		t.Errorf("with the signer down, served seq %d, want the stored 4", m.Seq)
	}
	clock = clock.Add(23 * time.Hour) // expired
	h, _ := st.Host(ctx, "alpha")
	if _, err := p.CurrentManifest(ctx, h); !errors.Is(err, pipeline.ErrManifestExpired) {
		t.Fatalf("expired manifest with the signer down: %v, want ErrManifestExpired", err)
	}

	// A renewal racing a newer deploy does not replace it.
	p.Signer = deploy.KeySigner{Key: key}
	stale, _ := st.Host(ctx, "alpha") // read before the newer deploy
	newer, _ := deploy.Sign(deploy.Manifest{Host: "alpha", StorePath: path, Commit: "c2", Seq: 9,
		IssuedAt: clock, Expires: clock.Add(72 * time.Hour)}, key)
	newerBody, _ := json.Marshal(newer)
	if err := st.SetDesired(ctx, "alpha", path, "c2", 9, newerBody); err != nil {
		t.Fatal(err)
	}
	got, err := p.CurrentManifest(ctx, stale)
	if err != nil {
		t.Fatal(err)
	}
	if m := verify(got); m.Seq != 9 {
		t.Errorf("renewing a stale read served seq %d, want the newer 9", m.Seq)
	}
	if h, _ := st.Host(ctx, "alpha"); string(h.Manifest) != string(newerBody) || h.DesiredSeq != 9 {
		t.Errorf("the renewal replaced the newer manifest: seq %d", h.DesiredSeq)
	}
}
