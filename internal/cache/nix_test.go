package cache_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/file"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv"
	gonar "github.com/nix-community/go-nix/pkg/nar"
	"github.com/nix-community/go-nix/pkg/nixbase32"
)

// testClosure builds testdata/closure.nix with a fresh salt and returns the
// nix client, the top path and its closure.
func testClosure(t *testing.T) (*nix.Client, string, []nix.PathInfo) {
	t.Helper()
	env := testenv.Nix(t)
	busybox := testenv.Aarch64(t)
	client := &nix.Client{Env: env}
	salt := fmt.Sprintf("%d", time.Now().UnixNano())
	ctx := context.Background()
	out, err := client.BuildFile(ctx, "testdata/closure.nix",
		"--argstr", "salt", salt, "--argstr", "busybox", busybox)
	if err != nil {
		t.Fatalf("build test closure: %v", err)
	}
	if len(out) != 1 {
		t.Fatalf("build test closure: got outputs %v, want one", out)
	}
	machine, err := os.ReadFile(filepath.Join(out[0], "machine"))
	if err != nil || strings.TrimSpace(string(machine)) != "aarch64" {
		t.Fatalf("aarch64 build ran on %q (%v), want aarch64", machine, err)
	}
	closure, err := client.PathInfo(ctx, out[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(closure) != 3 {
		t.Fatalf("closure has %d paths, want 3", len(closure))
	}
	return client, out[0], closure
}

// nixCopyFrom substitutes path from the cache at url into a fresh store
// trusting only key, and returns the fresh store's root and nix's output.
func nixCopyFrom(t *testing.T, url string, key cache.PublicKey, path string) (string, string, error) {
	t.Helper()
	root := t.TempDir()
	cmd := exec.Command("nix", "copy", "--from", url, "--to", "local?root="+root,
		"--option", "trusted-public-keys", key.String(),
		"--option", "narinfo-cache-negative-ttl", "0",
		path)
	cmd.Env = testenv.Nix(t) // a private XDG cache: no narinfo remembered
	out, err := cmd.CombinedOutput()
	return root, string(out), err
}

// narHash serialises dir as a NAR and returns its hash in narinfo form.
func narHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	if err := gonar.DumpPath(h, dir); err != nil {
		t.Fatalf("dump %s: %v", dir, err)
	}
	return "sha256:" + nixbase32.EncodeToString(h.Sum(nil))
}

type backendCase struct {
	name string
	// open returns an empty backend and the URL the real nix client
	// substitutes from.
	open func(t *testing.T) (cache.Backend, string)
}

func fileBackendCase() backendCase {
	return backendCase{"file", func(t *testing.T) (cache.Backend, string) {
		b, err := file.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle("/nix-cache/", http.StripPrefix("/nix-cache", cache.NewHandler(b)))
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		return b, srv.URL + "/nix-cache"
	}}
}

// TestRealNix pushes a closure with references (one path built for aarch64
// under qemu) and proves with the real nix client that a fresh store trusting
// only the farm's key substitutes it intact, and refuses tampered narinfos.
func TestRealNix(t *testing.T) {
	_, top, closure := testClosure(t)
	key, err := cache.GenerateKey("farm-test-1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := cache.GenerateKey("farm-test-1") // same name, other key
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, bc := range backendCases() {
		t.Run(bc.name, func(t *testing.T) {
			b, url := bc.open(t)
			p := &cache.Pusher{Backend: b, Key: key, Store: &nix.Client{Env: testenv.Nix(t)}}
			res, err := p.Push(ctx, top)
			if err != nil {
				t.Fatalf("Push: %v", err)
			}
			if res.Uploaded != 3 || res.Skipped != 0 {
				t.Fatalf("first push uploaded %d, skipped %d; want 3, 0", res.Uploaded, res.Skipped)
			}
			res, err = p.Push(ctx, top)
			if err != nil || res.Uploaded != 0 || res.Skipped != 3 {
				t.Fatalf("second push = %+v, %v; want everything skipped", res, err)
			}
			rep, err := cache.Verify(ctx, b, []cache.PublicKey{key.Public()}, cache.VerifyOptions{})
			if err != nil || !rep.OK() || rep.NarInfos != 3 {
				t.Fatalf("Verify = %+v, %v; want 3 consistent paths", rep, err)
			}

			root, out, err := nixCopyFrom(t, url, key.Public(), top)
			if err != nil {
				t.Fatalf("nix copy from the cache: %v\n%s", err, out)
			}
			for _, pi := range closure {
				if got := narHash(t, filepath.Join(root, pi.Path)); got != pi.NarHash {
					t.Errorf("substituted %s hashes to %s, want %s", pi.Path, got, pi.NarHash)
				}
			}

			topKey := cache.NarInfoKey(top)
			orig := readObject(t, b, topKey)
			tampers := []struct {
				name string
				edit func(ni *cache.NarInfo)
			}{
				{"changed NarHash", func(ni *cache.NarInfo) {
					ni.NarHash = "sha256:" + strings.Repeat("0", 52)
				}},
				{"changed reference", func(ni *cache.NarInfo) {
					ni.References = []string{ni.StorePath}
				}},
				{"signed by another key", func(ni *cache.NarInfo) {
					if err := ni.Sign(other); err != nil {
						t.Fatal(err)
					}
				}},
			}
			for _, tc := range tampers {
				t.Run(tc.name, func(t *testing.T) {
					ni, err := cache.ParseNarInfo(bytes.NewReader(orig))
					if err != nil {
						t.Fatal(err)
					}
					tc.edit(ni)
					writeObject(t, b, topKey, []byte(ni.String()))
					defer writeObject(t, b, topKey, orig)
					_, out, err := nixCopyFrom(t, url, key.Public(), top)
					if err == nil {
						t.Fatalf("nix copy accepted a narinfo with %s:\n%s", tc.name, out)
					}
					if !strings.Contains(out, "signature") {
						t.Errorf("nix copy failed, but not for the signature:\n%s", out)
					}
				})
			}
		})
	}
}

func readObject(t *testing.T, b cache.Backend, key string) []byte {
	t.Helper()
	rc, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeObject(t *testing.T, b cache.Backend, key string, body []byte) {
	t.Helper()
	if err := b.Put(context.Background(), key, bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
}
