package deploy_test

import (
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
