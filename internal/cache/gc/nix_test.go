package gc_test

import (
	"context"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	gonar "github.com/nix-community/go-nix/pkg/nar"
	"github.com/nix-community/go-nix/pkg/nixbase32"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/file"
	"github.com/homelab-farm/farm/internal/cache/gc"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/miniotest"
)

// TestRealNixAfterCollection pushes two real closures (8 paths each, some
// NARs streamed in parts), collects with one of them as the root, and proves
// with the real nix client that a fresh store trusting only the farm's key
// substitutes the kept closure intact, while the other is gone for good.
// The collected closure is then pushed again and both substitute.
func TestRealNixAfterCollection(t *testing.T) {
	env := testenv.Nix(t)
	client := &nix.Client{Env: env}
	ctx := context.Background()
	build := func(salt string) (string, []nix.PathInfo) {
		out, err := client.BuildFile(ctx, "../testdata/chain.nix", "--argstr", "salt", salt)
		if err != nil {
			t.Fatalf("build chain: %v", err)
		}
		closure, err := client.PathInfo(ctx, out[0])
		if err != nil {
			t.Fatal(err)
		}
		return out[0], closure
	}
	stamp := strconv.FormatInt(time.Now().UnixNano(), 10)
	kept, keptClosure := build("kept-" + stamp)
	gone, goneClosure := build("gone-" + stamp)
	key, err := cache.GenerateKey("farm-gc-nix-1")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		open func(t *testing.T) (cache.Backend, string) // a backend and the URL nix reads
	}{
		{"file", func(t *testing.T) (cache.Backend, string) {
			b, err := file.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			mux := http.NewServeMux()
			mux.Handle("/nix-cache/", http.StripPrefix("/nix-cache", cache.NewHandler(b)))
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			return b, srv.URL + "/nix-cache"
		}},
		{"s3", func(t *testing.T) (cache.Backend, string) {
			srv := miniotest.Start(t)
			bucket := srv.NewBucket(t)
			srv.SetPublicRead(t, bucket)
			return openS3(t, srv, bucket), srv.Endpoint() + "/" + bucket
		}},
	}
	for _, bc := range cases {
		t.Run(bc.name, func(t *testing.T) {
			b, url := bc.open(t)
			p := &cache.Pusher{Backend: b, Key: key, Store: client}
			if _, err := p.Push(ctx, kept, gone); err != nil {
				t.Fatalf("push: %v", err)
			}
			c := &gc.Collector{Backend: b, Trusted: []cache.PublicKey{key.Public()}}
			res, err := c.Collect(ctx, []string{kept})
			if err != nil {
				t.Fatalf("collect: %v", err)
			}
			if res.NarInfos.Objects != len(goneClosure) || res.KeptNarInfos.Objects != len(keptClosure) {
				t.Fatalf("collection swept %d and kept %d narinfos, want %d and %d",
					res.NarInfos.Objects, res.KeptNarInfos.Objects, len(goneClosure), len(keptClosure))
			}
			verify(t, b, key, "after the collection")
			substitute(t, url, key, keptClosure)
			if out, err := nixCopy(t, url, key, gone); err == nil {
				t.Fatalf("nix substituted a collected path:\n%s", out)
			}

			if res, err := p.Push(ctx, gone); err != nil || res.Uploaded != len(goneClosure) {
				t.Fatalf("push again = %+v, %v; want %d paths uploaded", res, err, len(goneClosure))
			}
			if _, err := c.Collect(ctx, []string{kept, gone}); err != nil {
				t.Fatalf("collect: %v", err)
			}
			verify(t, b, key, "after the second collection")
			substitute(t, url, key, keptClosure)
			substitute(t, url, key, goneClosure)
		})
	}
}

// substitute copies every path of closure from url into a fresh store
// trusting only key, and checks each path's NAR hash.
func substitute(t *testing.T, url string, key cache.SecretKey, closure []nix.PathInfo) {
	t.Helper()
	root := t.TempDir()
	for _, pi := range closure {
		cmd := exec.Command("nix", "copy", "--from", url, "--to", "local?root="+root,
			"--option", "trusted-public-keys", key.Public().String(),
			"--option", "narinfo-cache-negative-ttl", "0", pi.Path)
		cmd.Env = testenv.Nix(t) // a private XDG cache: no narinfo remembered
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nix copy %s from the collected cache: %v\n%s", pi.Path, err, out)
		}
	}
	for _, pi := range closure {
		h := sha256.New()
		if err := gonar.DumpPath(h, filepath.Join(root, pi.Path)); err != nil {
			t.Fatalf("dump %s: %v", pi.Path, err)
		}
		if got := "sha256:" + nixbase32.EncodeToString(h.Sum(nil)); got != pi.NarHash {
			t.Errorf("substituted %s hashes to %s, want %s", pi.Path, got, pi.NarHash)
		}
	}
}

func nixCopy(t *testing.T, url string, key cache.SecretKey, path string) (string, error) {
	t.Helper()
	cmd := exec.Command("nix", "copy", "--from", url, "--to", "local?root="+t.TempDir(),
		"--option", "trusted-public-keys", key.Public().String(),
		"--option", "narinfo-cache-negative-ttl", "0", path)
	cmd.Env = testenv.Nix(t)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
