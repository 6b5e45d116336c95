package cachetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
)

// TestBackend runs the contract against backends made by newBackend, which
// must return a new, empty backend each time it is called.
func TestBackend(t *testing.T, newBackend func(t *testing.T) cache.Backend) {
	ctx := context.Background()

	t.Run("PutGetStat", func(t *testing.T) {
		b := newBackend(t)
		for _, key := range []string{"nix-cache-info", "abc.narinfo", "nar/xyz.nar.zst", "log/x.drv"} {
			body := []byte("contents of " + key)
			if err := b.Put(ctx, key, bytes.NewReader(body), int64(len(body))); err != nil {
				t.Fatalf("Put(%s): %v", key, err)
			}
			if got := get(t, b, key); !bytes.Equal(got, body) {
				t.Errorf("Get(%s) = %q, want %q", key, got, body)
			}
			size, err := b.Stat(ctx, key)
			if err != nil || size != int64(len(body)) {
				t.Errorf("Stat(%s) = %d, %v; want %d, nil", key, size, err, len(body))
			}
		}
	})

	t.Run("PutUnknownSize", func(t *testing.T) {
		b := newBackend(t)
		body := bytes.Repeat([]byte("x"), 100_000)
		if err := b.Put(ctx, "nar/unknown.nar", io.MultiReader(bytes.NewReader(body)), -1); err != nil {
			t.Fatalf("Put: %v", err)
		}
		if got := get(t, b, "nar/unknown.nar"); !bytes.Equal(got, body) {
			t.Errorf("Get returned %d bytes, want %d", len(got), len(body))
		}
	})

	t.Run("Replace", func(t *testing.T) {
		b := newBackend(t)
		put(t, b, "a.narinfo", "one")
		put(t, b, "a.narinfo", "two")
		if got := string(get(t, b, "a.narinfo")); got != "two" {
			t.Errorf("after replace got %q, want %q", got, "two")
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		b := newBackend(t)
		if _, err := b.Get(ctx, "missing.narinfo"); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("Get(missing) error = %v, want ErrNotFound", err)
		}
		if _, err := b.Stat(ctx, "nar/missing.nar.zst"); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("Stat(missing) error = %v, want ErrNotFound", err)
		}
		if err := b.Delete(ctx, "missing.narinfo"); err != nil {
			t.Errorf("Delete(missing) = %v, want nil", err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		b := newBackend(t)
		put(t, b, "gone.narinfo", "x")
		if err := b.Delete(ctx, "gone.narinfo"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := b.Stat(ctx, "gone.narinfo"); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("Stat after Delete: %v, want ErrNotFound", err)
		}
	})

	t.Run("ListOneLevel", func(t *testing.T) {
		b := newBackend(t)
		put(t, b, "nix-cache-info", "StoreDir: /nix/store\n")
		put(t, b, "a.narinfo", "a")
		put(t, b, "b.narinfo", "bb")
		put(t, b, "nar/a.nar.zst", "nar-a")
		put(t, b, "log/a.drv", "log")
		root := list(t, b, "")
		want := []string{"a.narinfo:1", "b.narinfo:2", "nix-cache-info:21"}
		if fmt.Sprint(root) != fmt.Sprint(want) {
			t.Errorf("List(\"\") = %v, want %v", root, want)
		}
		nars := list(t, b, "nar/")
		if fmt.Sprint(nars) != fmt.Sprint([]string{"nar/a.nar.zst:5"}) {
			t.Errorf("List(nar/) = %v, want [nar/a.nar.zst:5]", nars)
		}
		if empty := list(t, b, "nothing/"); len(empty) != 0 {
			t.Errorf("List(nothing/) = %v, want none", empty)
		}
	})

	t.Run("ListMany", func(t *testing.T) {
		b := newBackend(t)
		const n = 1500
		var wg sync.WaitGroup
		errs := make(chan error, n)
		sem := make(chan struct{}, 16)
		for i := range n {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				key := fmt.Sprintf("%032d.narinfo", i)
				if err := b.Put(ctx, key, strings.NewReader("x"), 1); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("Put: %v", err)
		}
		if got := len(list(t, b, "")); got != n {
			t.Errorf("List found %d objects, want %d", got, n)
		}
	})

	t.Run("ListStopsOnError", func(t *testing.T) {
		b := newBackend(t)
		put(t, b, "a.narinfo", "a")
		put(t, b, "b.narinfo", "b")
		stop := errors.New("stop")
		calls := 0
		err := b.List(ctx, "", func(cache.Object) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("List = %v after %d calls, want the callback's error after 1", err, calls)
		}
	})

	t.Run("PutStreaming", func(t *testing.T) {
		b := newBackend(t)
		body := make([]byte, 3<<20+17)
		_, _ = rand.Read(body)
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() { done <- b.Put(ctx, "nar/big.nar.zst", pr, -1) }()
		for chunk := range bytes.SplitSeq(body, []byte{0}) { // uneven writes
			if _, err := pw.Write(append(chunk, 0)); err != nil {
				t.Fatalf("Write: %v", err)
			}
		}
		if got := list(t, b, "nar/"); len(got) != 0 {
			t.Errorf("while streaming List(nar/) = %v, want nothing visible", got)
		}
		pw.Close()
		if err := <-done; err != nil {
			t.Fatalf("Put: %v", err)
		}
		want := append(bytes.Clone(body), 0)
		if got := get(t, b, "nar/big.nar.zst"); !bytes.Equal(got, want) {
			t.Errorf("Get: %d bytes, want %d", len(got), len(want))
		}
	})

	t.Run("PutFailingReader", func(t *testing.T) {
		b := newBackend(t)
		bad := errors.New("the store path changed while it was read")
		for _, n := range []int64{0, 100, 3 << 20} { // nothing, small, streamed in parts
			r := io.MultiReader(io.LimitReader(rand.Reader, n), errReader{bad})
			if err := b.Put(ctx, "nar/bad.nar.zst", r, -1); err == nil {
				t.Fatalf("Put from a reader failing after %d bytes succeeded", n)
			}
			for _, dir := range []string{"", "nar/"} {
				if got := list(t, b, dir); len(got) != 0 {
					t.Errorf("after a failed Put of %d bytes List(%q) = %v, want nothing", n, dir, got)
				}
			}
		}
	})

	t.Run("ListModTime", func(t *testing.T) {
		b := newBackend(t)
		before := time.Now().Add(-2 * time.Second) // file systems and S3 keep coarse times
		put(t, b, "a.narinfo", "a")
		put(t, b, "nar/a.nar.zst", "nar")
		after := time.Now().Add(2 * time.Second)
		for _, dir := range []string{"", "nar/"} {
			err := b.List(ctx, dir, func(o cache.Object) error {
				if o.ModTime.Before(before) || o.ModTime.After(after) {
					t.Errorf("%s: ModTime %v, want between %v and %v", o.Key, o.ModTime, before, after)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("List(%q): %v", dir, err)
			}
		}
	})

	t.Run("DeleteMany", func(t *testing.T) {
		b := newBackend(t)
		const n = 1234 // more than one S3 multi-object delete request
		var keys []string
		for i := range n {
			keys = append(keys, fmt.Sprintf("%032d.narinfo", i))
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for _, k := range keys {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				put(t, b, k, "x")
			})
		}
		wg.Wait()
		put(t, b, "nar/kept.nar.zst", "kept")
		put(t, b, "kept.narinfo", "kept")
		gone := append(keys, "nar/never-there.nar.zst")
		if err := cache.DeleteMany(ctx, b, gone); err != nil {
			t.Fatalf("DeleteMany: %v", err)
		}
		if got := list(t, b, ""); fmt.Sprint(got) != "[kept.narinfo:4]" {
			t.Errorf("after DeleteMany List(\"\") = %d objects %.80v, want [kept.narinfo:4]", len(got), got)
		}
		if got := list(t, b, "nar/"); fmt.Sprint(got) != "[nar/kept.nar.zst:4]" {
			t.Errorf("after DeleteMany List(nar/) = %v, want [nar/kept.nar.zst:4]", got)
		}
		if err := cache.DeleteMany(ctx, b, nil); err != nil {
			t.Errorf("DeleteMany(nothing) = %v", err)
		}
		if _, ok := b.(cache.BatchDeleter); ok {
			if err := cache.DeleteMany(ctx, b, []string{"kept.narinfo", "../escape"}); err == nil {
				t.Errorf("DeleteMany with an invalid key succeeded")
			}
		}
	})

	t.Run("InvalidKeys", func(t *testing.T) {
		b := newBackend(t)
		for _, key := range []string{"", "../escape", "nar/../../x"} {
			if err := b.Put(ctx, key, strings.NewReader("x"), 1); err == nil {
				t.Errorf("Put(%q) succeeded, want an error", key)
			}
		}
	})
}

func put(t *testing.T, b cache.Backend, key, body string) {
	t.Helper()
	if err := b.Put(context.Background(), key, strings.NewReader(body), int64(len(body))); err != nil {
		t.Fatalf("Put(%s): %v", key, err)
	}
}

func get(t *testing.T, b cache.Backend, key string) []byte {
	t.Helper()
	rc, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer rc.Close()
	body, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return body
}

// list returns "key:size" of every object in dir, sorted.
func list(t *testing.T, b cache.Backend, dir string) []string {
	t.Helper()
	var got []string
	err := b.List(context.Background(), dir, func(o cache.Object) error {
		got = append(got, fmt.Sprintf("%s:%d", o.Key, o.Size))
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", dir, err)
	}
	sort.Strings(got)
	return got
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
