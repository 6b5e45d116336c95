package deploy_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/deploy"
)

// FuzzVerify: no manifest bytes or signature, however malformed, verify
// unless they are exactly what the trusted key signed.
func FuzzVerify(f *testing.F) {
	key, _ := cache.GenerateKey("farm-deploy-1")
	good, _ := deploy.Sign(deploy.Manifest{Host: "malphas", StorePath: "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-x",
		Seq: 3, IssuedAt: time.Unix(0, 0).UTC(), Expires: time.Unix(3600, 0).UTC()}, key)
	f.Add([]byte(good.Manifest), good.Signature)
	f.Add([]byte(`{"host":"malphas"}`), good.Signature)
	f.Add([]byte(`null`), "farm-deploy-1:")
	trusted := []cache.PublicKey{key.Public()}
	f.Fuzz(func(t *testing.T, manifest []byte, sig string) {
		m, err := deploy.Verify(deploy.Signed{Manifest: manifest, Signature: sig}, trusted, "malphas", time.Unix(60, 0), 0)
		if err != nil {
			return
		}
		if string(manifest) != string(good.Manifest) || sig != good.Signature {
			t.Fatalf("verified a manifest the key never signed: %q %q -> %+v", manifest, sig, m)
		}
	})
}

// FuzzValidateStorePath: a manifest the key signs, whatever its store
// path, is accepted only with a path that is one component under the store
// with a Nix base32 hash part and a name that cannot climb out or pass for
// an option.
func FuzzValidateStorePath(f *testing.F) {
	key, _ := cache.GenerateKey("farm-deploy-1")
	trusted := []cache.PublicKey{key.Public()}
	f.Add("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-malphas")
	f.Add("/nix/store/..")
	f.Add("/nix/store/")
	f.Add("/nix/store/-rf /")
	f.Add("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-../../etc")
	f.Fuzz(func(t *testing.T, storePath string) {
		s, err := deploy.Sign(deploy.Manifest{Host: "malphas", StorePath: storePath, Seq: 1,
			IssuedAt: time.Unix(0, 0).UTC(), Expires: time.Unix(3600, 0).UTC()}, key)
		if err != nil {
			if !errors.Is(err, deploy.ErrMalformed) {
				t.Fatalf("Sign(%q) = %v, want nil or ErrMalformed", storePath, err)
			}
			return
		}
		m, err := deploy.Verify(s, trusted, "malphas", time.Unix(60, 0), 0)
		if err != nil {
			t.Fatalf("Verify of a manifest Sign made: %v", err)
		}
		base, ok := strings.CutPrefix(m.StorePath, "/nix/store/")
		if !ok || len(base) < 34 || strings.ContainsAny(base, "/ \x00\n") || base[33] == '.' || base[32] != '-' ||
			strings.Trim(base[:32], "0123456789abcdfghijklmnpqrsvwxyz") != "" {
			t.Fatalf("accepted store path %q", m.StorePath)
		}
	})
}
