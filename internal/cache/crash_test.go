package cache_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/cacheurl"
	"github.com/homelab-farm/farm/internal/cache/file"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/miniotest"
)

// The crash tests run this test binary again as a pusher that kills itself
// with SIGKILL at its Nth write to the cache (see crashHelper).
const (
	envCrashURL  = "CACHE_CRASH_URL"
	envCrashKey  = "CACHE_CRASH_KEY"
	envCrashPath = "CACHE_CRASH_PATH"
	envCrashAt   = "CACHE_CRASH_AT"
)

func TestMain(m *testing.M) {
	if os.Getenv(envCrashURL) != "" {
		crashHelper()
		return
	}
	miniotest.Main(m)
}

// crashHelper pushes one path to the cache at CACHE_CRASH_URL (credentials
// from the environment), counting every step of
// every write (start, middle, end of each object; commit) and sending itself
// SIGKILL at step CACHE_CRASH_AT. It exits 0 if the push completes first.
func crashHelper() {
	key, err := cache.ParseSecretKey(os.Getenv(envCrashKey))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	at, _ := strconv.Atoi(os.Getenv(envCrashAt))
	b, err := cacheurl.Open(context.Background(), os.Getenv(envCrashURL), os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	k := &killer{Backend: b, at: at}
	p := &cache.Pusher{Backend: k, Key: key, Store: &nix.Client{}, Jobs: 1}
	if _, err := p.Push(context.Background(), os.Getenv(envCrashPath)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(4)
	}
	os.Exit(0)
}

// killer is a cache.Backend that dies at its at-th write step.
type killer struct {
	cache.Backend
	mu sync.Mutex
	n  int
	at int
}

func (k *killer) step() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.n++
	if k.n == k.at {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute) // the signal is on its way
	}
}

func (k *killer) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	k.step()
	if err := k.Backend.Put(ctx, key, &stepReader{r: r, k: k}, size); err != nil {
		return err
	}
	k.step()
	return nil
}

// stepReader counts a step after the first read and after every 2 MiB.
type stepReader struct {
	r    io.Reader
	k    *killer
	read int64
}

func (s *stepReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 && (s.read == 0 || s.read/(2<<20) != (s.read+int64(n))/(2<<20)) {
		s.k.step()
	}
	s.read += int64(n)
	return n, err
}

// TestCrashSafety kills a push with SIGKILL at every write step in turn
// (every second one on S3; at least 20 either way), each time on an empty
// cache: after each kill the cache verifies, and a new push completes it.
func TestCrashSafety(t *testing.T) {
	env := testenv.Nix(t)
	client := &nix.Client{Env: env}
	out, err := client.BuildFile(context.Background(), "testdata/chain.nix",
		"--argstr", "salt", strconv.FormatInt(time.Now().UnixNano(), 10))
	if err != nil {
		t.Fatalf("build chain: %v", err)
	}
	top := out[0]
	key, err := cache.GenerateKey("farm-crash-1")
	if err != nil {
		t.Fatal(err)
	}
	trusted := []cache.PublicKey{key.Public()}
	cases := []struct {
		name   string
		stride int
		// open returns an empty backend, its URL and the environment that
		// lets the helper open it.
		open func(t *testing.T) (cache.Backend, string, []string)
	}{
		{"file", 1, func(t *testing.T) (cache.Backend, string, []string) {
			dir := t.TempDir()
			b, err := file.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			return b, "file://" + dir, nil
		}},
		{"s3", 2, func(t *testing.T) (cache.Backend, string, []string) {
			srv := miniotest.Start(t)
			bucket := srv.NewBucket(t)
			return openS3(t, srv, bucket), srv.CacheURL(bucket), srv.Env()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := func(url string, extra []string, at int) error {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(append(env, extra...), envCrashURL+"="+url, envCrashKey+"="+key.String(),
					envCrashPath+"="+top, envCrashAt+"="+strconv.Itoa(at))
				out, err := cmd.CombinedOutput()
				if err != nil && len(out) > 0 {
					t.Logf("helper at step %d: %s", at, out)
				}
				return err
			}
			verify := func(b cache.Backend, when string) *cache.Report {
				t.Helper()
				rep, err := cache.Verify(context.Background(), b, trusted, cache.VerifyOptions{})
				if err != nil {
					t.Fatalf("verify %s: %v", when, err)
				}
				if !rep.OK() {
					t.Fatalf("%s the cache is inconsistent: %v", when, rep.Problems)
				}
				return rep
			}
			kills := 0
			for at := 1; ; at += tc.stride {
				b, url, extra := tc.open(t)
				err := run(url, extra, at)
				if err == nil {
					break // the push finished before step at: every step was tried
				}
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Fatalf("push at step %d failed without being killed: %v", at, err)
				}
				kills++
				verify(b, fmt.Sprintf("after a kill at step %d", at))
				if err := run(url, extra, 0); err != nil {
					t.Fatalf("push after a kill at step %d: %v", at, err)
				}
				if rep := verify(b, fmt.Sprintf("after a kill at step %d and a new push", at)); rep.NarInfos != 8 {
					t.Fatalf("after a kill at step %d and a new push the cache has %d paths, want 8", at, rep.NarInfos)
				}
				if at > 500 {
					t.Fatal("push never completed")
				}
			}
			if kills < 20 {
				t.Errorf("killed at %d points, want at least 20", kills)
			}
			t.Logf("killed with SIGKILL at %d points; every time the cache verified and a new push completed it", kills)
		})
	}
}
