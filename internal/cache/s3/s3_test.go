package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/cachetest"
	"github.com/homelab-farm/farm/internal/cache/s3"
	"github.com/homelab-farm/farm/internal/testenv/miniotest"
)

func TestMain(m *testing.M) { miniotest.Main(m) }

// open opens rawURL with getenv, failing the test on error.
func open(t testing.TB, rawURL string, getenv func(string) string) *s3.Backend {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s3.Open(context.Background(), u, getenv)
	if err != nil {
		t.Fatalf("Open(%s): %v", rawURL, err)
	}
	return b
}

// openErr opens rawURL and returns the error, which must not be nil.
func openErr(t testing.TB, rawURL string, getenv func(string) string) error {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s3.Open(context.Background(), u, getenv)
	if err == nil {
		t.Fatalf("Open(%s) = %v, want an error", rawURL, b)
	}
	return err
}

// newBackend opens a backend on a fresh bucket of the shared MinIO.
func newBackend(t testing.TB) (*s3.Backend, *miniotest.Server, string) {
	t.Helper()
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	return open(t, srv.CacheURL(bucket), srv.Getenv), srv, bucket
}

func TestContract(t *testing.T) {
	cachetest.TestBackend(t, func(t *testing.T) cache.Backend {
		b, _, _ := newBackend(t)
		return b
	})
}

func TestPutGetStatList(t *testing.T) {
	ctx := context.Background()
	b, srv, bucket := newBackend(t)
	big := randomBytes(3<<20 + 5) // over the 1 MiB small-object limit
	objects := []struct {
		key   string
		body  []byte
		size  int64 // as passed to Put
		ctype string
	}{
		{"nix-cache-info", []byte("StoreDir: /nix/store\n"), -1, "text/x-nix-cache-info"},
		{"abc.narinfo", []byte("StorePath: /nix/store/abc-x\n"), 28, "text/x-nix-narinfo"},
		{"nar/small.nar.zst", []byte("tiny"), -1, "application/x-nix-nar"},
		{"nar/big.nar.zst", big, -1, "application/x-nix-nar"},
		{"nar/big-known.nar.zst", big, int64(len(big)), "application/x-nix-nar"},
		{"log/abc-x.drv", []byte("building\n"), 9, "text/plain; charset=utf-8"},
		{"nar/empty.nar", nil, -1, "application/x-nix-nar"},
	}
	for _, o := range objects {
		// A reader that is not seekable, as a pipe from a compressor is.
		if err := b.Put(ctx, o.key, io.MultiReader(bytes.NewReader(o.body)), o.size); err != nil {
			t.Fatalf("Put(%s): %v", o.key, err)
		}
	}
	for _, o := range objects {
		if got := get(t, b, o.key); !bytes.Equal(got, o.body) {
			t.Errorf("Get(%s): %d bytes, want %d", o.key, len(got), len(o.body))
		}
		size, err := b.Stat(ctx, o.key)
		if err != nil || size != int64(len(o.body)) {
			t.Errorf("Stat(%s) = %d, %v; want %d, nil", o.key, size, err, len(o.body))
		}
		info, err := srv.Client().StatObject(ctx, bucket, o.key, minio.StatObjectOptions{})
		if err != nil {
			t.Fatalf("stat %s with the root client: %v", o.key, err)
		}
		if info.ContentType != o.ctype {
			t.Errorf("content type of %s = %q, want %q", o.key, info.ContentType, o.ctype)
		}
	}
	if got, want := list(t, b, ""), "[abc.narinfo:28 nix-cache-info:21]"; fmt.Sprint(got) != want {
		t.Errorf("List(\"\") = %v, want %s", got, want)
	}
	if got := list(t, b, "nar"); len(got) != 4 { // "nar" is taken as "nar/"
		t.Errorf("List(nar) = %v, want the 4 NARs", got)
	}
}

func TestNotFound(t *testing.T) {
	ctx := context.Background()
	b, _, bucket := newBackend(t)
	_, err := b.Get(ctx, "nar/missing.nar.zst")
	if !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("Get(missing) error = %v, want ErrNotFound", err)
	}
	if want := "s3://" + bucket + "/nar/missing.nar.zst"; !strings.Contains(err.Error(), want) {
		t.Errorf("Get(missing) error %q does not name %s", err, want)
	}
	if _, err := b.Stat(ctx, "missing.narinfo"); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Stat(missing) error = %v, want ErrNotFound", err)
	}
	if err := b.Delete(ctx, "missing.narinfo"); err != nil {
		t.Errorf("Delete(missing) = %v, want nil", err)
	}
}

// TestListMany lists more objects than one S3 response holds (1,000): two
// full pages and a partial one, in one call.
func TestListMany(t *testing.T) {
	ctx := context.Background()
	b, _, _ := newBackend(t)
	const narinfos, nars = 2500, 120
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	errs := make(chan error, narinfos+nars)
	for i := range narinfos + nars {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			key := fmt.Sprintf("%032d.narinfo", i)
			if i >= narinfos {
				key = fmt.Sprintf("nar/%052d.nar.zst", i)
			}
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
	start := time.Now()
	root := list(t, b, "")
	took := time.Since(start)
	if len(root) != narinfos {
		t.Errorf("List(\"\") found %d objects, want %d", len(root), narinfos)
	}
	if got := list(t, b, "nar/"); len(got) != nars {
		t.Errorf("List(nar/) found %d objects, want %d", len(got), nars)
	}
	t.Logf("listed %d objects in %v", len(root), took.Round(time.Millisecond))
}

func TestPrefix(t *testing.T) {
	ctx := context.Background()
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	whole := open(t, srv.CacheURL(bucket), srv.Getenv)
	sub := open(t, srv.CacheURL(bucket)+"&prefix=farm/x", srv.Getenv)
	put(t, sub, "a.narinfo", "a")
	put(t, sub, "nar/a.nar.zst", "nar")
	put(t, whole, "b.narinfo", "b")

	if got, want := fmt.Sprint(list(t, sub, "")), "[a.narinfo:1]"; got != want {
		t.Errorf("List(\"\") under the prefix = %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(list(t, whole, "farm/x/nar/")), "[farm/x/nar/a.nar.zst:3]"; got != want {
		t.Errorf("List(farm/x/nar/) of the whole bucket = %s, want %s", got, want)
	}
	if _, err := sub.Stat(ctx, "b.narinfo"); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Stat of a key outside the prefix: %v, want ErrNotFound", err)
	}
	if got := sub.String(); !strings.Contains(got, "prefix=farm/x") {
		t.Errorf("String() = %q, want it to show the prefix", got)
	}
}

// TestPutStreamingLarge streams 96 MiB of unknown size through Put (an
// upload of six parts), and checks that the process did not buffer the
// object: it allocates little more than the two 16 MiB parts in flight.
func TestPutStreamingLarge(t *testing.T) {
	ctx := context.Background()
	b, srv, bucket := newBackend(t)
	const size, maxAlloc = 96 << 20, 56 << 20

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(newRandReader(1), size), h)
	if err := b.Put(ctx, "nar/large.nar.zst", src, -1); err != nil {
		t.Fatalf("Put: %v", err)
	}
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc

	if n, err := b.Stat(ctx, "nar/large.nar.zst"); err != nil || n != size {
		t.Fatalf("Stat = %d, %v; want %d", n, err, size)
	}
	rc, err := b.Get(ctx, "nar/large.nar.zst")
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	if _, err := io.Copy(got, rc); err != nil {
		t.Fatalf("read back: %v", err)
	}
	rc.Close()
	if !bytes.Equal(got.Sum(nil), h.Sum(nil)) {
		t.Errorf("content read back differs from what was put")
	}
	info, err := srv.Client().StatObject(ctx, bucket, "nar/large.nar.zst", minio.StatObjectOptions{})
	if err != nil || info.ContentType != "application/x-nix-nar" {
		t.Errorf("content type = %q, %v; want application/x-nix-nar", info.ContentType, err)
	}
	assertNoLeftovers(t, srv, bucket, "nar/large.nar.zst")
	if allocated > maxAlloc {
		t.Errorf("Put of %d MiB allocated %d MiB, want at most %d MiB: it must stream", size>>20, allocated>>20, maxAlloc>>20)
	}
	t.Logf("%d MiB of unknown size: %v (%.0f MiB/s, %d MiB allocated)",
		size>>20, took.Round(time.Millisecond), float64(size>>20)/took.Seconds(), allocated>>20)
}

// TestPutUnknownSizes crosses the 1 MiB boundary between objects held in
// memory and put in one PUT, and objects streamed in parts.
func TestPutUnknownSizes(t *testing.T) {
	ctx := context.Background()
	b, srv, bucket := newBackend(t)
	const mib = 1 << 20
	var keys []string
	for _, n := range []int{0, 1, mib - 1, mib, mib + 1, 3*mib + 7} {
		key := fmt.Sprintf("nar/%08d.nar.zst", n)
		keys = append(keys, key)
		body := randomBytes(n)
		if err := b.Put(ctx, key, iotest.OneByteReader(bytes.NewReader(body)), -1); err != nil {
			t.Fatalf("%d bytes: Put: %v", n, err)
		}
		if got := get(t, b, key); !bytes.Equal(got, body) {
			t.Errorf("%d bytes: Get returned %d bytes that differ", n, len(got))
		}
		info, err := srv.Client().StatObject(ctx, bucket, key, minio.StatObjectOptions{})
		if err != nil || info.ContentType != "application/x-nix-nar" {
			t.Errorf("%d bytes: content type = %q, %v; want application/x-nix-nar", n, info.ContentType, err)
		}
	}
	assertNoLeftovers(t, srv, bucket, keys...)
}

// TestPutFailingReaderLeavesNothing: a reader that fails (the pusher found
// the store path corrupt) aborts the upload, multipart uploads included.
func TestPutFailingReaderLeavesNothing(t *testing.T) {
	ctx := context.Background()
	b, srv, bucket := newBackend(t)
	bad := errors.New("corrupt")
	for _, n := range []int64{0, 100, 20 << 20} { // nothing, one PUT, a multipart upload
		r := io.MultiReader(io.LimitReader(newRandReader(2), n), iotest.ErrReader(bad))
		if err := b.Put(ctx, "nar/x.nar.zst", r, -1); !errors.Is(err, bad) {
			t.Errorf("Put failing after %d bytes = %v, want %v", n, err, bad)
		}
	}
	assertNoLeftovers(t, srv, bucket)
}

func TestPutContextCancelled(t *testing.T) {
	b, srv, bucket := newBackend(t)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- b.Put(ctx, "nar/x.nar.zst", pr, -1) }()
	if _, err := io.Copy(pw, io.LimitReader(newRandReader(3), 2<<20)); err != nil {
		t.Fatal(err)
	}
	cancel()
	go func() { _, _ = io.Copy(pw, newRandReader(4)) }() // keeps writing until Put gives up
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Put after cancel: %v, want context.Canceled", err)
	}
	pr.CloseWithError(context.Canceled)
	assertNoLeftovers(t, srv, bucket)
}

func TestOpenMissingBucket(t *testing.T) {
	srv := miniotest.Start(t)
	for _, u := range []string{
		srv.CacheURL("no-such-bucket-here"),
		"s3://no-such-bucket-here?endpoint=" + srv.Endpoint(), // no region: asks for it first
	} {
		err := openErr(t, u, srv.Getenv)
		if !errors.Is(err, s3.ErrNoSuchBucket) {
			t.Errorf("Open(%s) error = %v, want ErrNoSuchBucket", u, err)
		}
		if !strings.Contains(err.Error(), "s3://no-such-bucket-here") {
			t.Errorf("Open(%s) error %q does not name the bucket", u, err)
		}
		t.Log(err)
	}
}

func TestOpenBadCredentials(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	dir := t.TempDir()
	idFile := filepath.Join(dir, "id")
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(idFile, []byte(srv.AccessKey()), 0o600)
	os.WriteFile(secretFile, []byte("wr0ng-s3cr3t"), 0o600)
	tests := []struct {
		name   string
		url    string
		env    map[string]string
		source string // what the error must say the credentials came from
	}{
		{
			name:   "wrong secret",
			url:    srv.CacheURL(bucket),
			env:    map[string]string{"AWS_ACCESS_KEY_ID": srv.AccessKey(), "AWS_SECRET_ACCESS_KEY": "wr0ng-s3cr3t"},
			source: "AWS_ACCESS_KEY_ID",
		},
		{
			name:   "unknown key",
			url:    srv.CacheURL(bucket),
			env:    map[string]string{"AWS_ACCESS_KEY_ID": "nobody", "AWS_SECRET_ACCESS_KEY": "wr0ng-s3cr3t"},
			source: "AWS_ACCESS_KEY_ID",
		},
		{
			name:   "wrong secret in a file",
			url:    srv.CacheURL(bucket) + "&access-key-file=" + idFile + "&secret-key-file=" + secretFile,
			source: secretFile,
		},
		{
			name:   "wrong secret, no region",
			url:    "s3://" + bucket + "?endpoint=" + srv.Endpoint(),
			env:    map[string]string{"AWS_ACCESS_KEY_ID": srv.AccessKey(), "AWS_SECRET_ACCESS_KEY": "wr0ng-s3cr3t"},
			source: "AWS_ACCESS_KEY_ID",
		},
		{name: "anonymous", url: srv.CacheURL(bucket), source: "no credentials found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := openErr(t, tt.url, func(k string) string { return tt.env[k] })
			if !errors.Is(err, s3.ErrAccessDenied) {
				t.Errorf("Open error = %v, want ErrAccessDenied", err)
			}
			for _, want := range []string{bucket, tt.source} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Open error %q does not say %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("Open error %q shows the secret", err)
			}
			t.Log(err)
		})
	}
}

func TestOpenUnreadableCredentials(t *testing.T) {
	srv := miniotest.Start(t)
	missing := filepath.Join(t.TempDir(), "missing-secret")
	env := map[string]string{"AWS_ACCESS_KEY_ID_FILE": missing, "AWS_SECRET_ACCESS_KEY_FILE": missing}
	err := openErr(t, srv.CacheURL("any-bucket"), func(k string) string { return env[k] })
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Open error = %v, want one naming %s that wraps ErrNotExist", err, missing)
	}
}

// TestDeadEndpoint: nothing listens, and the error comes within seconds,
// not after minutes of retries.
func TestDeadEndpoint(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	env := map[string]string{"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "s3cr3t-key"}
	for _, u := range []string{
		"s3://cache?endpoint=http://" + addr,                       // asks the region first
		"s3://cache?endpoint=http://" + addr + "&region=eu-west-1", // lists at once
	} {
		start := time.Now()
		err = openErr(t, u, func(k string) string { return env[k] })
		took := time.Since(start)
		if !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("Open error = %v, want connection refused", err)
		}
		if took > 10*time.Second {
			t.Errorf("Open of a dead endpoint took %v, want a few seconds", took)
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("Open error %q shows the secret", err)
		}
		t.Logf("dead endpoint failed after %v: %v", took.Round(time.Millisecond), err)
	}
}

// TestHungEndpoint: a server that accepts connections but never answers
// holds Open only as long as the caller's context allows.
func TestHungEndpoint(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var conns []net.Conn // held open, never answered
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	env := map[string]string{"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "s3cr3t-key"}
	u, _ := url.Parse("s3://cache?region=us-east-1&endpoint=http://" + l.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_, err = s3.Open(ctx, u, func(k string) string { return env[k] })
	if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || took > 3*time.Second {
		t.Errorf("Open of a hung endpoint with a 1 s deadline: %v after %v; want the deadline's error within it", err, took)
	}
}

// TestMinIOStopped: a backend keeps working across a MinIO restart, and
// fails fast while MinIO is down.
func TestMinIOStopped(t *testing.T) {
	ctx := context.Background()
	srv := miniotest.StartDedicated(t)
	bucket := srv.NewBucket(t)
	b := open(t, srv.CacheURL(bucket), srv.Getenv)
	put(t, b, "before.narinfo", "before")

	srv.Stop(t)
	start := time.Now()
	err := b.Put(ctx, "during.narinfo", strings.NewReader("during"), 6)
	took := time.Since(start)
	if err == nil {
		t.Fatalf("Put while MinIO is stopped succeeded")
	}
	if took > 10*time.Second {
		t.Errorf("Put while MinIO is stopped took %v to fail, want a few seconds", took)
	}
	t.Logf("Put while MinIO is stopped failed after %v: %v", took.Round(time.Millisecond), err)

	srv.Restart(t)
	put(t, b, "after.narinfo", "after")
	if got, want := fmt.Sprint(list(t, b, "")), "[after.narinfo:5 before.narinfo:6]"; got != want {
		t.Errorf("List after restart = %s, want %s", got, want)
	}
}

// assertNoLeftovers checks that bucket holds only keep: no temporary
// objects, no incomplete multipart uploads.
func assertNoLeftovers(t *testing.T, srv *miniotest.Server, bucket string, keep ...string) {
	t.Helper()
	ctx := context.Background()
	var got []string
	for obj := range srv.Client().ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Fatalf("list %s: %v", bucket, obj.Err)
		}
		got = append(got, obj.Key)
	}
	if fmt.Sprint(got) != fmt.Sprint(keep) {
		t.Errorf("objects in the bucket = %v, want %v", got, keep)
	}
	for up := range srv.Client().ListIncompleteUploads(ctx, bucket, "", true) {
		if up.Err != nil {
			t.Fatalf("list uploads in %s: %v", bucket, up.Err)
		}
		t.Errorf("incomplete multipart upload left: %s", up.Key)
	}
}

func put(t testing.TB, b cache.Backend, key, body string) {
	t.Helper()
	if err := b.Put(context.Background(), key, strings.NewReader(body), int64(len(body))); err != nil {
		t.Fatalf("Put(%s): %v", key, err)
	}
}

func get(t testing.TB, b cache.Backend, key string) []byte {
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

// list returns "key:size" of every object in dir, in listing order.
func list(t testing.TB, b cache.Backend, dir string) []string {
	t.Helper()
	var got []string
	err := b.List(context.Background(), dir, func(o cache.Object) error {
		got = append(got, fmt.Sprintf("%s:%d", o.Key, o.Size))
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", dir, err)
	}
	return got
}

// newRandReader is an endless stream of incompressible bytes, made on the
// fly so that tests never hold a large object in memory.
func newRandReader(seed uint64) io.Reader { return rand.NewChaCha8([32]byte{byte(seed)}) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	io.ReadFull(newRandReader(9), b)
	return b
}
