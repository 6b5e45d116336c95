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
		Cache: "http://builder:8080/nix-cache",
	}
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
		last    uint64
		wantErr error
	}{
		{"valid", good, "malphas", 6, nil},
		{"valid first", good, "malphas", 0, nil},
		{"replayed", good, "malphas", 7, deploy.ErrStale},
		{"older", good, "malphas", 9, deploy.ErrStale},
		{"other host", good, "pi", 0, deploy.ErrWrongHost},
		{"foreign key", foreign, "malphas", 0, deploy.ErrBadSignature},
		{"tampered path", tamper(func(m *deploy.Manifest) { m.StorePath += "x" }), "malphas", 0, deploy.ErrBadSignature},
		{"tampered seq", tamper(func(m *deploy.Manifest) { m.Seq = 99 }), "malphas", 0, deploy.ErrBadSignature},
		{"signature without domain", deploy.Signed{Manifest: good.Manifest, Signature: bare}, "malphas", 0, deploy.ErrBadSignature},
		{"empty", deploy.Signed{}, "malphas", 0, deploy.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := deploy.Verify(tc.s, trusted, tc.host, tc.last)
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
		{Host: "a", StorePath: valid + "/bin", Seq: 1},
		{Host: "a", StorePath: valid},
		{Host: "a", StorePath: "/nix/store/x-y", Seq: 1},
		{Host: "a", StorePath: "/nix/store/..", Seq: 1},
		{Host: "a", StorePath: "/nix/store/", Seq: 1},
		{Host: "a", StorePath: "/nix/store/-rf /", Seq: 1},
		{Host: "a", StorePath: "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-.hidden", Seq: 1},
		{Host: "a", StorePath: "/nix/store/0123456789abcdefghijklmnpqrsvwxy-a", Seq: 1}, // 'e' is not Nix base32
		{Host: "a", StorePath: "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-a b", Seq: 1},
		{Host: "a", StorePath: "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-" + strings.Repeat("n", 212), Seq: 1},
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
		body, _ := json.Marshal(deploy.Manifest{Host: "malphas", StorePath: p, Seq: 1})
		sig, err := key.Sign("homelab-farm deploy manifest v1\n" + string(body))
		if err != nil {
			t.Fatal(err)
		}
		_, err = deploy.Verify(deploy.Signed{Manifest: body, Signature: sig}, []cache.PublicKey{key.Public()}, "malphas", 0)
		if !errors.Is(err, deploy.ErrMalformed) {
			t.Errorf("Verify(store path %q) = %v, want ErrMalformed", p, err)
		}
	}
}
