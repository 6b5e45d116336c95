package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nix-community/go-nix/pkg/nixbase32"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/file"
	"github.com/homelab-farm/farm/internal/state"
)

// gcCache is a file cache of signed synthetic paths, every object two
// hours old.
type gcCache struct {
	dir   string
	b     *file.Backend
	key   cache.SecretKey
	paths map[string]string // name -> store path
}

func newGCCache(t *testing.T) *gcCache {
	t.Helper()
	dir := t.TempDir()
	b, err := file.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := cache.GenerateKey("farm-cmd-1")
	if err != nil {
		t.Fatal(err)
	}
	c := &gcCache{dir: dir, b: b, key: key, paths: map[string]string{}}
	if err := b.Put(context.Background(), "nix-cache-info", strings.NewReader(cache.CacheInfo), -1); err != nil {
		t.Fatal(err)
	}
	return c
}

// add writes a signed narinfo for name referencing refs (names), and its NAR.
func (c *gcCache) add(t *testing.T, name string, refs ...string) string {
	t.Helper()
	var h [20]byte
	_, _ = rand.Read(h[:])
	p := cache.StoreDir + "/" + nixbase32.EncodeToString(h[:]) + "-" + name
	c.paths[name] = p
	nar := make([]byte, 1000)
	_, _ = rand.Read(nar)
	var nh [32]byte
	_, _ = rand.Read(nh[:])
	ni := &cache.NarInfo{StorePath: p, URL: "nar/" + nixbase32.EncodeToString(nh[:]) + ".nar", Compression: cache.None,
		NarHash: "sha256:" + nixbase32.EncodeToString(nh[:]), NarSize: 1000, FileSize: 1000,
		FileHash: "sha256:" + nixbase32.EncodeToString(nh[:])}
	for _, r := range refs {
		ni.References = append(ni.References, c.paths[r])
	}
	if err := ni.Sign(c.key); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.b.Put(ctx, ni.URL, bytes.NewReader(nar), int64(len(nar))); err != nil {
		t.Fatal(err)
	}
	if err := c.b.Put(ctx, cache.NarInfoKey(p), strings.NewReader(ni.String()), -1); err != nil {
		t.Fatal(err)
	}
	return p
}

func (c *gcCache) age(t *testing.T, d time.Duration) {
	t.Helper()
	when := time.Now().Add(-d)
	err := filepath.Walk(c.dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		return os.Chtimes(p, when, when)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (c *gcCache) files(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(c.dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			out = append(out, strings.TrimPrefix(p, c.dir))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (c *gcCache) has(t *testing.T, name string) bool {
	t.Helper()
	_, err := c.b.Stat(context.Background(), cache.NarInfoKey(c.paths[name]))
	return err == nil
}

// writeState makes a builder state in which host web was deployed d1..d3
// (d3 last) and runs d2, and a target built an hour ago produced b1.
func writeState(t *testing.T, paths map[string]string) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := state.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i, n := range []string{"d1", "d2", "d3"} {
		if err := st.SetDesired(ctx, "web", paths[n], "c", uint64(i+1), []byte("{}")); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, "host.desired", map[string]any{"host": "web", "store_path": paths[n]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Report(ctx, "web", paths["d2"], "ok", ""); err != nil {
		t.Fatal(err)
	}
	e, _, err := st.StartEvaluation(ctx, state.Evaluation{JobID: 1, Repo: "r", Branch: "main", Commit: "c"})
	if err != nil {
		t.Fatal(err)
	}
	tg, err := st.PutTarget(ctx, state.Target{EvalID: e.ID, Host: "db", OutPath: paths["b1"], State: state.TargetPending})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetTargetState(ctx, tg.ID, state.TargetBuilt, ""); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCacheGC(t *testing.T) {
	c := newGCCache(t)
	c.add(t, "lib")
	for _, n := range []string{"d1", "d2", "d3", "b1", "old", "pinned"} {
		c.add(t, n, "lib")
	}
	c.add(t, "top-old", "old")
	db := writeState(t, c.paths)
	c.age(t, 2*time.Hour)
	before := c.files(t)
	env := mapEnv(map[string]string{"BUILDER_TRUSTED_KEYS": c.key.Public().String()})
	args := []string{"gc", "--cache", "file://" + c.dir, "--roots-from", db, "--generations", "2",
		"--root", c.paths["pinned"], "--grace", "1h", "--quiet", "--list"}

	var out, errOut bytes.Buffer
	if err := runCache(context.Background(), append(args, "--dry-run"), env, &out, &errOut); err != nil {
		t.Fatalf("dry run: %v\n%s", err, errOut.String())
	}
	if after := c.files(t); !slices.Equal(after, before) {
		t.Fatalf("the dry run changed the cache")
	}
	for _, want := range []string{"dry run of file://", "narinfos: 5 kept", "3 would go", c.paths["d1"], c.paths["old"], c.paths["top-old"]} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	if err := runCache(context.Background(), args, env, &out, &errOut); err != nil {
		t.Fatalf("gc: %v\n%s", err, errOut.String())
	}
	for n, want := range map[string]bool{"lib": true, "d1": false, "d2": true, "d3": true, "b1": true,
		"old": false, "top-old": false, "pinned": true} {
		if got := c.has(t, n); got != want {
			t.Errorf("%s kept: %v, want %v", n, got, want)
		}
	}
	if !strings.Contains(out.String(), "NARs: 5 kept") || !strings.Contains(out.String(), "3 went") {
		t.Errorf("output:\n%s", out.String())
	}
	out.Reset()
	if err := runCache(context.Background(), []string{"verify", "--quick", "--cache", "file://" + c.dir}, env, &out, &errOut); err != nil {
		t.Fatalf("cache verify after gc: %v\n%s", err, out.String())
	}
}

// TestCacheGCBadInput: every mistake is a clear error, and nothing is deleted.
func TestCacheGCBadInput(t *testing.T) {
	c := newGCCache(t)
	c.add(t, "a")
	c.add(t, "b", "a")
	c.age(t, 2*time.Hour)
	empty := filepath.Join(t.TempDir(), "empty.db")
	st, err := state.Open(context.Background(), empty)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	other, _ := cache.GenerateKey("farm-cmd-1")
	notCache := t.TempDir()
	if err := os.WriteFile(filepath.Join(notCache, "x.narinfo"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := c.key.Public().String()
	url := "file://" + c.dir
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"zero generations", []string{"--cache", url, "--trusted-key", good, "--root", c.paths["a"], "--generations", "0"}, "retention of 0 generations"},
		{"negative age", []string{"--cache", url, "--trusted-key", good, "--root", c.paths["a"], "--keep-days", "-1"}, "keep -1 days"},
		{"negative grace", []string{"--cache", url, "--trusted-key", good, "--root", c.paths["a"], "--grace", "-1h"}, "grace -1h0m0s"},
		{"short grace", []string{"--cache", url, "--trusted-key", good, "--root", c.paths["a"], "--grace", "5s"}, "want at least 1m0s"},
		{"no key", []string{"--cache", url, "--root", c.paths["a"]}, "no --trusted-key"},
		{"no roots", []string{"--cache", url, "--trusted-key", good}, "no roots"},
		{"bad root", []string{"--cache", url, "--trusted-key", good, "--root", "/etc"}, `pin "/etc": not a store path`},
		{"missing state", []string{"--cache", url, "--trusted-key", good, "--roots-from", filepath.Join(t.TempDir(), "none.db")}, "no such file"},
		{"empty state", []string{"--cache", url, "--trusted-key", good, "--roots-from", empty}, "names no closure to keep"},
		{"another farm's cache", []string{"--cache", url, "--trusted-key", other.Public().String(), "--root", c.paths["b"]}, "not the farm's cache"},
		{"not a cache", []string{"--cache", "file://" + notCache, "--trusted-key", good, "--root", c.paths["a"]}, "no nix-cache-info"},
	}
	before := c.files(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := runCache(context.Background(), append([]string{"gc", "--quiet"}, tc.args...), mapEnv(nil), &out, &errOut)
			if err == nil {
				t.Fatalf("gc %v succeeded, want an error", tc.args)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if after := c.files(t); !slices.Equal(after, before) {
				t.Errorf("a refused gc changed the cache: %v", fmt.Sprint(after))
			}
		})
	}
}
