package deploy_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/deploy"
)

func TestVerify(t *testing.T) {
	key, _ := cache.GenerateKey("farm-deploy-1")
	other, _ := cache.GenerateKey("farm-deploy-1")
	trusted := []cache.PublicKey{key.Public()}
	m := deploy.Manifest{
		Host: "malphas", StorePath: "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-malphas",
		Commit: "abc123", Seq: 7, IssuedAt: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC),
		Expires: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC), Cache: "http://builder:8080/nix-cache",
	}
	now := m.IssuedAt.Add(time.Hour)
	good, err := deploy.Sign(m, key)
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := deploy.Sign(m, other)
	tamper := func(edit func(*deploy.Manifest)) deploy.Signed {
		mm := m
		edit(&mm)
		body, _ := json.Marshal(mm)
		return deploy.Signed{Manifest: body, Signature: good.Signature}
	}
	// A narinfo-style signature by the right key over the bare JSON must
	// not pass: manifests are signed under their own domain.
	bare, _ := key.Sign(string(good.Manifest))

	cases := []struct {
		name    string
		s       deploy.Signed
		host    string
		now     time.Time
		wantErr error
	}{
		{"valid", good, "malphas", now, nil},
		{"valid at expiry", good, "malphas", m.Expires, nil},
		{"expired but within skew", good, "malphas", m.Expires.Add(4 * time.Minute), nil},
		{"expired", good, "malphas", m.Expires.Add(6 * time.Minute), deploy.ErrExpired},
		{"other host", good, "pi", now, deploy.ErrWrongHost},
		{"foreign key", foreign, "malphas", now, deploy.ErrBadSignature},
		{"tampered path", tamper(func(m *deploy.Manifest) { m.StorePath += "x" }), "malphas", now, deploy.ErrBadSignature},
		{"tampered seq", tamper(func(m *deploy.Manifest) { m.Seq = 99 }), "malphas", now, deploy.ErrBadSignature},
		{"tampered expiry", tamper(func(m *deploy.Manifest) { m.Expires = m.Expires.Add(time.Hour) }), "malphas", m.Expires.Add(30 * time.Minute), deploy.ErrBadSignature},
		{"signature without domain", deploy.Signed{Manifest: good.Manifest, Signature: bare}, "malphas", now, deploy.ErrBadSignature},
		{"empty", deploy.Signed{}, "malphas", now, deploy.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := deploy.Verify(tc.s, trusted, tc.host, tc.now, 5*time.Minute)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && (got.StorePath != m.StorePath || got.Seq != m.Seq || !got.IssuedAt.Equal(m.IssuedAt)) {
				t.Errorf("Verify returned %+v, want %+v", got, m)
			}
		})
	}
}

func TestSignRefusesInvalid(t *testing.T) {
	key, _ := cache.GenerateKey("farm-deploy-1")
	const valid = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-a"
	for _, m := range []deploy.Manifest{
		{StorePath: valid, Seq: 1},
		{Host: "a", StorePath: "/tmp/x", Seq: 1},
		{Host: "a", StorePath: valid + "/bin", Seq: 1, IssuedAt: time.Unix(100, 0), Expires: time.Unix(200, 0)},
		{Host: "a", StorePath: valid},
		{Host: "a", StorePath: "/nix/store/x-y", Seq: 1, IssuedAt: time.Unix(100, 0), Expires: time.Unix(200, 0)},
		{Host: "a", StorePath: "/nix/store/..", Seq: 1, IssuedAt: time.Unix(100, 0), Expires: time.Unix(200, 0)},
		{Host: "a", StorePath: "/nix/store/", Seq: 1, IssuedAt: time.Unix(100, 0), Expires: time.Unix(200, 0)},
		{Host: "a", StorePath: "/nix/store/-rf /", Seq: 1, IssuedAt: time.Unix(100, 0), Expires: time.Unix(200, 0)},
		{Host: "a", StorePath: "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-.hidden", Seq: 1, IssuedAt: time.Unix(100, 0), Expires: time.Unix(200, 0)},
		{Host: "a", StorePath: "/nix/store/0123456789abcdefghijklmnpqrsvwxy-a", Seq: 1, IssuedAt: time.Unix(100, 0), Expires: time.Unix(200, 0)}, // 'e' is not Nix base32
		{Host: "a", StorePath: "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-a b", Seq: 1, IssuedAt: time.Unix(100, 0), Expires: time.Unix(200, 0)},
		{Host: "a", StorePath: "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-" + strings.Repeat("n", 212), Seq: 1, IssuedAt: time.Unix(100, 0), Expires: time.Unix(200, 0)},
		{Host: "a", StorePath: "/nix/store/x-y/bin", Seq: 1},
		{Host: "a", StorePath: "/nix/store/x-y"},
		{Host: "a", StorePath: "/nix/store/x-y", Seq: 1, IssuedAt: time.Unix(100, 0)},                            // no expiry
		{Host: "a", StorePath: "/nix/store/x-y", Seq: 1, IssuedAt: time.Unix(100, 0), Expires: time.Unix(50, 0)}, // expires before issued
	} {
		if _, err := deploy.Sign(m, key); !errors.Is(err, deploy.ErrMalformed) {
			t.Errorf("Sign(%+v) = %v, want ErrMalformed", m, err)
		}
	}
	if !strings.Contains(deploy.ErrStale.Error(), "not newer") {
		t.Errorf("ErrStale reads %q", deploy.ErrStale)
	}
}

// TestVerifyRefusesBadStorePath: a manifest the trusted key did sign is
// still refused when its store path is not a valid top-level store path
// (a signer fed bad data must not make hosts switch to it).
func TestVerifyRefusesBadStorePath(t *testing.T) {
	key, _ := cache.GenerateKey("farm-deploy-1")
	for _, p := range []string{"/nix/store/..", "/nix/store/", "/nix/store/-rf /", "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-.."} {
		body, _ := json.Marshal(deploy.Manifest{Host: "malphas", StorePath: p, Seq: 1, IssuedAt: time.Unix(100, 0), Expires: time.Unix(200, 0)})
		sig, err := key.Sign("homelab-farm deploy manifest v1\n" + string(body))
		if err != nil {
			t.Fatal(err)
		}
		_, err = deploy.Verify(deploy.Signed{Manifest: body, Signature: sig}, []cache.PublicKey{key.Public()}, "malphas", time.Unix(150, 0), 0)
		if !errors.Is(err, deploy.ErrMalformed) {
			t.Errorf("Verify(store path %q) = %v, want ErrMalformed", p, err)
		}
	}
}

// A manifest without an expiry, signed the way manifests were before they
// had one, is refused: it would otherwise stay valid for ever.
func TestVerifyRefusesManifestWithoutExpiry(t *testing.T) {
	key, _ := cache.GenerateKey("farm-deploy-1")
	body := []byte(`{"host":"malphas","storePath":"/nix/store/0123456789abcdfghijklmnpqrsvwxyz-x","commit":"c","seq":3,"issuedAt":"2026-11-25T12:00:00Z"}`)
	sig, err := key.Sign("homelab-farm deploy manifest v1\n" + string(body))
	if err != nil {
		t.Fatal(err)
	}
	_, err = deploy.Verify(deploy.Signed{Manifest: body, Signature: sig}, []cache.PublicKey{key.Public()}, "malphas",
		time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC), 0)
	if !errors.Is(err, deploy.ErrMalformed) {
		t.Fatalf("Verify = %v, want ErrMalformed", err)
	}
}

func TestCompare(t *testing.T) {
	const p1, p2 = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-a", "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-b"
	cases := []struct {
		name     string
		seq      uint64
		path     string
		lastSeq  uint64
		lastPath string
		want     deploy.Order
		wantErr  error
	}{
		{"first", 1, p1, 0, "", deploy.Newer, nil},
		{"newer", 8, p2, 7, p1, deploy.Newer, nil},
		{"newer, same path", 8, p1, 7, p1, deploy.Newer, nil},
		{"same or renewed", 7, p1, 7, p1, deploy.Same, nil},
		{"same seq, other path", 7, p2, 7, p1, 0, deploy.ErrStale},
		{"older", 6, p1, 7, p1, 0, deploy.ErrStale},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := deploy.Compare(deploy.Manifest{Seq: tc.seq, StorePath: tc.path}, tc.lastSeq, tc.lastPath)
			if got != tc.want || !errors.Is(err, tc.wantErr) {
				t.Fatalf("Compare = %v, %v; want %v, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
