package cache_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv"
)

// TestPushRefusesCorruptStorePath changes a store path's contents behind the
// store's back: the push fails naming the path, and the cache gains neither
// its NAR nor its narinfo, whether the NAR is small (buffered) or large
// (streamed).
func TestPushRefusesCorruptStorePath(t *testing.T) {
	env := testenv.Nix(t)
	client := &nix.Client{Env: env}
	key, err := cache.GenerateKey("farm-corrupt-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1000, 6 << 20} {
		for _, bc := range backendCases() {
			t.Run(bc.name+"/"+strconv.Itoa(size), func(t *testing.T) {
				expr := filepath.Join(t.TempDir(), "p.nix")
				src := `derivation { name = "corrupt-` + strconv.FormatInt(time.Now().UnixNano(), 10) +
					`"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "export PATH=/usr/bin:/bin; mkdir $out; head -c ` +
					strconv.Itoa(size) + ` /dev/urandom > $out/data" ]; }`
				if err := os.WriteFile(expr, []byte(src), 0o644); err != nil {
					t.Fatal(err)
				}
				out, err := client.BuildFile(context.Background(), expr)
				if err != nil {
					t.Fatal(err)
				}
				data := filepath.Join(out[0], "data")
				if err := os.Chmod(data, 0o644); err != nil {
					t.Fatal(err)
				}
				f, err := os.OpenFile(data, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = f.WriteAt([]byte("tampered"), int64(size/2))
				f.Close()

				b, _ := bc.open(t)
				p := &cache.Pusher{Backend: b, Key: key, Store: client, Retry: cache.Retry{Budget: time.Second}}
				_, err = p.Push(context.Background(), out[0])
				if err == nil || !strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), out[0]) {
					t.Fatalf("Push = %v, want an error saying %s is corrupt", err, out[0])
				}
				for _, dir := range []string{"", "nar/"} {
					_ = b.List(context.Background(), dir, func(o cache.Object) error {
						if o.Key != "nix-cache-info" {
							t.Errorf("cache holds %s after a refused push", o.Key)
						}
						return nil
					})
				}
			})
		}
	}
}
