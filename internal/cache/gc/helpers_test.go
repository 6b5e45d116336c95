package gc_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	gonar "github.com/nix-community/go-nix/pkg/nar"
	"github.com/nix-community/go-nix/pkg/nixbase32"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/file"
	"github.com/homelab-farm/farm/internal/cache/s3"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv/miniotest"
)

// fakeStore is a cache.Store of synthetic paths kept under a temporary
// root, so that a real Pusher uploads them without Nix.
type fakeStore struct {
	root  string
	mu    sync.Mutex
	infos map[string]nix.PathInfo
}

func newFakeStore(t testing.TB) *fakeStore {
	return &fakeStore{root: t.TempDir(), infos: make(map[string]nix.PathInfo)}
}

// add creates a store path called name holding size random bytes (or
// content, when given) and referencing refs; deriver names its derivation.
func (s *fakeStore) add(t testing.TB, name string, size int, refs ...string) string {
	t.Helper()
	var h [20]byte
	_, _ = rand.Read(h[:])
	p := cache.StoreDir + "/" + nixbase32.EncodeToString(h[:]) + "-" + name
	body := make([]byte, size)
	_, _ = rand.Read(body)
	return s.addContent(t, p, body, refs...)
}

// addContent creates the store path p holding body.
func (s *fakeStore) addContent(t testing.TB, p string, body []byte, refs ...string) string {
	t.Helper()
	dir := filepath.Join(s.root, p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	c := &counter{}
	if err := gonar.DumpPath(io.MultiWriter(h, c), dir); err != nil {
		t.Fatal(err)
	}
	var dh [20]byte
	_, _ = rand.Read(dh[:])
	sorted := append([]string(nil), refs...)
	sort.Strings(sorted)
	s.mu.Lock()
	s.infos[p] = nix.PathInfo{
		Path: p, NarHash: "sha256:" + nixbase32.EncodeToString(h.Sum(nil)), NarSize: uint64(c.n),
		References: sorted, Deriver: cache.StoreDir + "/" + nixbase32.EncodeToString(dh[:]) + "-" + filepath.Base(p)[33:] + ".drv",
	}
	s.mu.Unlock()
	return p
}

func (s *fakeStore) info(p string) nix.PathInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.infos[p]
}

// PathInfo returns the closure of paths.
func (s *fakeStore) PathInfo(_ context.Context, paths ...string) ([]nix.PathInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	var out []nix.PathInfo
	var visit func(p string) error
	visit = func(p string) error {
		if seen[p] {
			return nil
		}
		seen[p] = true
		pi, ok := s.infos[p]
		if !ok {
			return fmt.Errorf("%s is not in the store", p)
		}
		out = append(out, pi)
		for _, r := range pi.References {
			if err := visit(r); err != nil {
				return err
			}
		}
		return nil
	}
	for _, p := range paths {
		if err := visit(p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// closure returns the store paths of p's closure.
func (s *fakeStore) closure(t testing.TB, p ...string) []string {
	t.Helper()
	infos, err := s.PathInfo(context.Background(), p...)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, pi := range infos {
		out = append(out, pi.Path)
	}
	return out
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// push uploads paths with a real Pusher.
func push(t testing.TB, b cache.Backend, key cache.SecretKey, s *fakeStore, paths ...string) cache.Result {
	t.Helper()
	p := &cache.Pusher{Backend: b, Key: key, Store: s, StoreRoot: s.root, Jobs: 4}
	res, err := p.Push(context.Background(), paths...)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	return res
}

// putLog uploads a build log for p's derivation.
func putLog(t testing.TB, b cache.Backend, s *fakeStore, p string) string {
	t.Helper()
	drv := s.info(p).Deriver
	body := "log of " + drv
	if err := cache.PutLog(context.Background(), b, drv, strings.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	return "log/" + filepath.Base(drv)
}

// backdate makes every object of a file cache look written age ago.
func backdate(t testing.TB, b *file.Backend, age time.Duration) {
	t.Helper()
	when := time.Now().Add(-age)
	err := filepath.Walk(b.Root(), func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		return os.Chtimes(p, when, when)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// verify fails the test unless the cache is consistent under key.
func verify(t testing.TB, b cache.Backend, key cache.SecretKey, when string) *cache.Report {
	t.Helper()
	rep, err := cache.Verify(context.Background(), b, []cache.PublicKey{key.Public()}, cache.VerifyOptions{})
	if err != nil {
		t.Fatalf("verify %s: %v", when, err)
	}
	if !rep.OK() {
		t.Fatalf("%s the cache is inconsistent: %v", when, rep.Problems)
	}
	return rep
}

// has reports whether the cache holds key.
func has(t testing.TB, b cache.Backend, key string) bool {
	t.Helper()
	_, err := b.Stat(context.Background(), key)
	if err != nil && !strings.Contains(err.Error(), cache.ErrNotFound.Error()) {
		t.Fatalf("stat %s: %v", key, err)
	}
	return err == nil
}

// keys lists every object of the cache, sorted.
func keys(t testing.TB, b cache.Backend) []string {
	t.Helper()
	var out []string
	for _, dir := range []string{"", "nar/", "log/", "gc/"} {
		err := b.List(context.Background(), dir, func(o cache.Object) error {
			out = append(out, o.Key)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(out)
	return out
}

type backendCase struct {
	name string
	open func(t *testing.T) cache.Backend
}

func fileCase() backendCase {
	return backendCase{"file", func(t *testing.T) cache.Backend {
		b, err := file.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}}
}

func s3Case() backendCase {
	return backendCase{"s3", func(t *testing.T) cache.Backend {
		srv := miniotest.Start(t)
		return openS3(t, srv, srv.NewBucket(t))
	}}
}

func openS3(t testing.TB, srv *miniotest.Server, bucket string) *s3.Backend {
	t.Helper()
	u, err := url.Parse(srv.CacheURL(bucket))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s3.Open(context.Background(), u, srv.Getenv)
	if err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
	return b
}

// hooked is a backend that calls before and after around each call.
type hooked struct {
	cache.Backend
	before func(op, key string)
	after  func(op, key string)
}

func (h *hooked) hook(f func(op, key string), op, key string) {
	if f != nil {
		f(op, key)
	}
}

func (h *hooked) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	h.hook(h.before, "put", key)
	defer h.hook(h.after, "put", key)
	return h.Backend.Put(ctx, key, r, size)
}

func (h *hooked) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	h.hook(h.before, "get", key)
	defer h.hook(h.after, "get", key)
	return h.Backend.Get(ctx, key)
}

func (h *hooked) Stat(ctx context.Context, key string) (int64, error) {
	h.hook(h.before, "stat", key)
	defer h.hook(h.after, "stat", key)
	return h.Backend.Stat(ctx, key)
}

func (h *hooked) List(ctx context.Context, dir string, fn func(cache.Object) error) error {
	h.hook(h.before, "list", dir)
	defer h.hook(h.after, "list", dir)
	return h.Backend.List(ctx, dir, fn)
}

func (h *hooked) Delete(ctx context.Context, key string) error {
	h.hook(h.before, "delete", key)
	defer h.hook(h.after, "delete", key)
	return h.Backend.Delete(ctx, key)
}

func (h *hooked) DeleteMany(ctx context.Context, keys []string) error {
	first := ""
	if len(keys) > 0 {
		first = keys[0]
	}
	h.hook(h.before, "deletemany", first)
	defer h.hook(h.after, "deletemany", first)
	return cache.DeleteMany(ctx, h.Backend, keys)
}

// withoutMarkers hides the collection markers from a pusher: a pusher
// without the protocol, to show that the race is real.
func withoutMarkers(b cache.Backend) cache.Backend { return &hideGC{b} }

type hideGC struct{ cache.Backend }

func (h *hideGC) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if strings.HasPrefix(key, "gc/") {
		return nil, fmt.Errorf("%s: %w", key, cache.ErrNotFound)
	}
	return h.Backend.Get(ctx, key)
}
