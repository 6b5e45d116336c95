package closurediff_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/file"
	"github.com/homelab-farm/farm/internal/closurediff"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv"
)

// buildClosures builds testdata/closures.nix in both variants with a fresh
// salt and returns the client and the old and new system paths.
func buildClosures(t *testing.T) (*nix.Client, []string, string, string) {
	t.Helper()
	env := testenv.Nix(t)
	client := &nix.Client{Env: env, StoreDB: nix.DefaultStoreDB}
	salt := fmt.Sprint(time.Now().UnixNano())
	var roots []string
	for _, variant := range []string{"old", "new"} {
		out, err := client.BuildFile(context.Background(), "testdata/closures.nix",
			"--argstr", "variant", variant, "--argstr", "salt", salt)
		if err != nil {
			t.Fatalf("build %s closure: %v", variant, err)
		}
		if len(out) != 1 {
			t.Fatalf("build %s closure: got %v, want one path", variant, out)
		}
		roots = append(roots, out[0])
	}
	return client, env, roots[0], roots[1]
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// nixDiffClosures runs the oracle.
func nixDiffClosures(t *testing.T, env []string, old, cur string) string {
	t.Helper()
	cmd := exec.Command("nix", "store", "diff-closures", old, cur)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix store diff-closures: %v", err)
	}
	return ansi.ReplaceAllString(string(out), "")
}

// TestMatchesNixDiffClosures: the diff computed from the store database
// prints exactly what `nix store diff-closures` prints for the same two
// closures (same packages, same version changes, same size deltas), and
// the counts and download agree with the closures Nix reports.
func TestMatchesNixDiffClosures(t *testing.T) {
	client, env, oldRoot, newRoot := buildClosures(t)
	ctx := context.Background()
	old, err := closurediff.FromStore(ctx, client, oldRoot)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := closurediff.FromStore(ctx, client, newRoot)
	if err != nil {
		t.Fatal(err)
	}
	d := closurediff.Compute(old, cur)
	// Through the nix command rather than the store database: the same.
	viaNix, err := closurediff.FromStore(ctx, &nix.Client{Env: env}, newRoot)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(viaNix, cur) {
		t.Errorf("closure through nix path-info differs from the store database's: %d vs %d paths", len(viaNix), len(cur))
	}
	gone := "/nix/store/00000000000000000000000000000000-nothing-1.0"
	for _, c := range []*nix.Client{client, {Env: env}} {
		if _, err := closurediff.FromStore(ctx, c, gone); !errors.Is(err, nix.ErrNotInStore) {
			t.Errorf("path not in the store (StoreDB %q): err %v, want nix.ErrNotInStore", c.StoreDB, err)
		}
	}

	want := nixDiffClosures(t, env, oldRoot, newRoot)
	if got := d.NixText(); got != want {
		t.Errorf("diff differs from nix store diff-closures\ngot:\n%s\nwant (nix):\n%s", got, want)
	}
	// The test closures exercise every case; make sure the oracle saw them.
	for _, line := range []string{
		"linux: 6.12.9 → 6.12.10, +10.0 KiB",
		"foo: 1.0 → 1.1",
		"bar-unstable: 2024-01-01 → 2024-02-01",
		"python3: 3.11 → 3.13, +10.0 KiB",
		"openssl: ∅ → 3.3, +9.",
		"gone: ε → ∅",
		"hello: ε → ∅",
		"Caps-Bar: ∅ → 2",
		"perl5.40.0-JSON: ∅ → 4.10",
		"firmware: ∅ → ε, +6",
		"zlib: +20.",
		"nixos-system-stolas: 24.11.1 → 24.11.2",
	} {
		if !strings.Contains(want, line) {
			t.Errorf("nix's output lacks %q: the test closures do not cover that case\n%s", line, want)
		}
	}

	if d.Added != 4 || d.Removed != 3 || d.Changed != 6 {
		t.Errorf("counts +%d ~%d -%d, want +4 ~6 -3 (newpkg firmware Caps-Bar perl5.40.0-JSON; oldpkg gone hello; linux foo bar-unstable python3 openssl nixos-system-stolas)", d.Added, d.Changed, d.Removed)
	}
	rebuilt := map[string]bool{}
	for _, c := range d.Packages {
		if c.Kind == closurediff.Rebuilt {
			rebuilt[c.Package] = true
		}
	}
	// zlib changed size, tiny by under 8 KiB (nix does not show it), etc
	// only its contents; glibc and unit are the same paths.
	if want := map[string]bool{"zlib": true, "tiny": true, "etc": true}; !maps.Equal(rebuilt, want) {
		t.Errorf("rebuilt %v, want %v", rebuilt, want)
	}

	oldPaths, newPaths := testenv.Requisites(t, env, oldRoot), testenv.Requisites(t, env, newRoot)
	fetch := 0
	for _, p := range newPaths {
		if !slices.Contains(oldPaths, p) {
			fetch++
		}
	}
	if d.PathsBefore != len(oldPaths) || d.PathsAfter != len(newPaths) || d.Download.Paths != fetch {
		t.Errorf("paths %d → %d, download %d; nix path-info says %d → %d, %d new",
			d.PathsBefore, d.PathsAfter, d.Download.Paths, len(oldPaths), len(newPaths), fetch)
	}
	if d.Download.Unknown != fetch || d.Download.Bytes != 0 {
		t.Errorf("download from the store alone: %+v, want every size unknown", d.Download)
	}
	if wantSize := nixClosureSize(t, env, newRoot); d.SizeAfter != wantSize {
		t.Errorf("new closure size %d, nix path-info -S says %d", d.SizeAfter, wantSize)
	}
}

// TestFromCache: a closure read back from a binary cache's narinfos is the
// one the store holds, and the download sizes come from the narinfos.
func TestFromCache(t *testing.T) {
	client, env, oldRoot, newRoot := buildClosures(t)
	ctx := context.Background()
	backend, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key, err := cache.GenerateKey("test-1")
	if err != nil {
		t.Fatal(err)
	}
	pusher := &cache.Pusher{Backend: backend, Key: key, Store: client}
	// Only the old closure is in the cache at first: the host's current system.
	if _, err := pusher.Push(ctx, oldRoot); err != nil {
		t.Fatal(err)
	}
	fromStore, err := closurediff.FromStore(ctx, client, oldRoot)
	if err != nil {
		t.Fatal(err)
	}
	old, err := closurediff.FromCache(ctx, backend, oldRoot)
	if err != nil {
		t.Fatal(err)
	}
	if len(old) != len(fromStore) {
		t.Fatalf("cache closure has %d paths, store closure %d", len(old), len(fromStore))
	}
	for p, info := range fromStore {
		got, ok := old[p]
		if !ok || got.NarSize != info.NarSize || got.FileSize == 0 {
			t.Errorf("%s: from cache %+v (present %v), store NarSize %d", p, got, ok, info.NarSize)
		}
	}
	if _, err := closurediff.FromCache(ctx, backend, newRoot); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("closure not in the cache: err %v, want cache.ErrNotFound", err)
	}

	cur, err := closurediff.FromStore(ctx, client, newRoot)
	if err != nil {
		t.Fatal(err)
	}
	if err := closurediff.FileSizes(ctx, backend, old, cur); err != nil {
		t.Fatal(err)
	}
	before := closurediff.Compute(old, cur)
	if before.Download.Unknown != before.Download.Paths || before.Download.Bytes != 0 {
		t.Errorf("before the push: download %+v, want all %d paths unknown", before.Download, before.Download.Paths)
	}
	if _, err := pusher.Push(ctx, newRoot); err != nil {
		t.Fatal(err)
	}
	if err := closurediff.FileSizes(ctx, backend, old, cur); err != nil {
		t.Fatal(err)
	}
	d := closurediff.Compute(old, cur)
	var want uint64
	n := 0
	for p := range cur {
		if _, ok := old[p]; ok {
			continue
		}
		n++
		rc, err := backend.Get(ctx, cache.NarInfoKey(p))
		if err != nil {
			t.Fatal(err)
		}
		ni, err := cache.ParseNarInfo(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		size, err := backend.Stat(ctx, ni.URL)
		if err != nil {
			t.Fatal(err)
		}
		want += uint64(size)
	}
	if d.Download.Paths != n || d.Download.Unknown != 0 || d.Download.Bytes != want {
		t.Errorf("download %+v, want %d paths of %d bytes (the NAR files' sizes)", d.Download, n, want)
	}
	if got, wantText := d.NixText(), nixDiffClosures(t, env, oldRoot, newRoot); got != wantText {
		t.Errorf("diff against the cache's closure differs from nix\ngot:\n%s\nwant:\n%s", got, wantText)
	}
}

// TestSourcesFallBackToCache: a host's current system that the builder's
// store no longer holds is read from the cache, and the diff is the same.
func TestSourcesFallBackToCache(t *testing.T) {
	client, env, oldRoot, newRoot := buildClosures(t)
	ctx := context.Background()
	backend, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key, err := cache.GenerateKey("test-1")
	if err != nil {
		t.Fatal(err)
	}
	pusher := &cache.Pusher{Backend: backend, Key: key, Store: client}
	if _, err := pusher.Push(ctx, oldRoot, newRoot); err != nil {
		t.Fatal(err)
	}
	want := nixDiffClosures(t, env, oldRoot, newRoot)
	src := closurediff.Sources{Store: client, Cache: backend}
	inStore, err := src.Diff(ctx, oldRoot, newRoot)
	if err != nil {
		t.Fatal(err)
	}
	// The old system leaves the builder's store.
	del := exec.Command("nix-store", "--delete", oldRoot)
	del.Env = env
	if out, err := del.CombinedOutput(); err != nil {
		t.Fatalf("nix-store --delete: %v\n%s", err, out)
	}
	if _, err := closurediff.FromStore(ctx, client, oldRoot); !errors.Is(err, nix.ErrNotInStore) {
		t.Fatalf("old system still in the store: %v", err)
	}
	fromCache, err := src.Diff(ctx, oldRoot, newRoot)
	if err != nil {
		t.Fatal(err)
	}
	if got := fromCache.NixText(); got != want {
		t.Errorf("diff against the cache's closure:\n%s\nnix said:\n%s", got, want)
	}
	if fromCache.Download != inStore.Download || fromCache.Download.Unknown != 0 || fromCache.Download.Bytes == 0 {
		t.Errorf("download %+v, with the old system in the store %+v", fromCache.Download, inStore.Download)
	}
	if _, err := (closurediff.Sources{Store: client}).Diff(ctx, oldRoot, newRoot); !errors.Is(err, nix.ErrNotInStore) {
		t.Errorf("without a cache: err %v, want nix.ErrNotInStore", err)
	}
	first, err := src.Diff(ctx, "", newRoot)
	if err != nil || first.Added != len(first.Packages) || first.Download.Paths != first.PathsAfter {
		t.Errorf("first build: %+v, %v; want everything added and downloaded", first, err)
	}
}

func nixClosureSize(t *testing.T, env []string, root string) uint64 {
	t.Helper()
	cmd := exec.Command("nix", "path-info", "--closure-size", root)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix path-info --closure-size: %v", err)
	}
	f := strings.Fields(string(out))
	var n uint64
	if len(f) != 2 {
		t.Fatalf("nix path-info --closure-size printed %q", out)
	}
	if _, err := fmt.Sscan(f[1], &n); err != nil {
		t.Fatalf("nix path-info --closure-size printed %q", out)
	}
	return n
}
