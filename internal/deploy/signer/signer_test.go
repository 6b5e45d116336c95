package signer_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/deploy/signer"
)

// shortDir is a temporary directory with a path short enough for a unix
// socket (t.TempDir's can pass the 108-byte limit).
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sgn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// start runs srv on a new socket until the test ends and returns a client.
func start(t *testing.T, srv *signer.Server) *signer.Client {
	t.Helper()
	sock := filepath.Join(shortDir(t), "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &signer.Client{Socket: sock}
}

const (
	pathA = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-a"
	pathB = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-b"
)

func TestSigner(t *testing.T) {
	key, _ := cache.GenerateKey("farm-deploy-1")
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	stateDir := t.TempDir()
	newServer := func() *signer.Server {
		return &signer.Server{Key: key, StateDir: stateDir, MaxTTL: 96 * time.Hour, Now: func() time.Time { return now }}
	}
	c := start(t, newServer())
	ctx := context.Background()
	man := func(host, path, commit string, seq uint64, ttl time.Duration) deploy.Manifest {
		return deploy.Manifest{Host: host, StorePath: path, Commit: commit, Seq: seq, IssuedAt: now, Expires: now.Add(ttl)}
	}

	if pk, err := c.PublicKey(ctx); err != nil || pk.String() != key.Public().String() {
		t.Fatalf("PublicKey = %v, %v; want %s", pk, err, key.Public())
	}
	cases := []struct {
		name    string
		m       deploy.Manifest
		wantErr error
	}{
		{"first", man("alpha", pathA, "c1", 5, 72*time.Hour), nil},
		{"renewal: same seq, path and commit", man("alpha", pathA, "c1", 5, 90*time.Hour), nil},
		{"newer", man("alpha", pathB, "c2", 8, 72*time.Hour), nil},
		{"lower seq", man("alpha", pathA, "c1", 7, 72*time.Hour), signer.ErrRefused},
		{"same seq, other path", man("alpha", pathA, "c2", 8, 72*time.Hour), signer.ErrRefused},
		{"another host has its own seq", man("beta", pathA, "c1", 3, 72*time.Hour), nil},
		{"expiry beyond the maximum TTL", man("alpha", pathB, "c3", 9, 97*time.Hour), signer.ErrRefused},
		{"expiry passed", man("alpha", pathB, "c3", 9, -time.Hour), signer.ErrRefused},
		{"malformed", man("", pathB, "c3", 9, time.Hour), deploy.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := c.Sign(ctx, tc.m)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Sign = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			got, err := deploy.Verify(s, []cache.PublicKey{key.Public()}, tc.m.Host, now, 0)
			if err != nil || got.Seq != tc.m.Seq || got.StorePath != tc.m.StorePath || !got.Expires.Equal(tc.m.Expires) {
				t.Fatalf("signed manifest: %+v, %v; want %+v", got, err, tc.m)
			}
		})
	}

	// A restarted signer remembers: seq 8 was the last for alpha.
	c2 := start(t, newServer())
	if _, err := c2.Sign(ctx, man("alpha", pathA, "c1", 6, time.Hour)); !errors.Is(err, signer.ErrRefused) {
		t.Errorf("after a restart, a lower seq: %v, want ErrRefused", err)
	}
	if _, err := c2.Sign(ctx, man("alpha", pathB, "c2", 8, time.Hour)); err != nil {
		t.Errorf("after a restart, a renewal: %v", err)
	}
}

func TestSignerPeerCredentials(t *testing.T) {
	key, _ := cache.GenerateKey("farm-deploy-1")
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	now := time.Now()
	m := deploy.Manifest{Host: "alpha", StorePath: pathA, Commit: "c", Seq: 1, IssuedAt: now, Expires: now.Add(time.Hour)}
	cases := []struct {
		name       string
		uids, gids []uint32
		wantErr    error
	}{
		{"no list: anyone who can open the socket", nil, nil, nil},
		{"uid allowed", []uint32{uid + 1, uid}, nil, nil},
		{"gid allowed", []uint32{uid + 1}, []uint32{gid}, nil},
		{"neither allowed", []uint32{uid + 1}, []uint32{gid + 1}, signer.ErrRefused},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := start(t, &signer.Server{Key: key, StateDir: t.TempDir(), AllowUIDs: tc.uids, AllowGIDs: tc.gids})
			if _, err := c.Sign(context.Background(), m); !errors.Is(err, tc.wantErr) {
				t.Fatalf("Sign = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// A signer that is not running is an error that is neither a refusal nor
// a malformed manifest: the caller may try again later.
func TestSignerDown(t *testing.T) {
	c := &signer.Client{Socket: filepath.Join(shortDir(t), "absent"), Timeout: time.Second}
	now := time.Now()
	_, err := c.Sign(context.Background(), deploy.Manifest{Host: "a", StorePath: pathA, Seq: 1, IssuedAt: now, Expires: now.Add(time.Hour)})
	if err == nil || errors.Is(err, signer.ErrRefused) || errors.Is(err, deploy.ErrMalformed) {
		t.Fatalf("Sign with no signer = %v, want a connection error", err)
	}
}
