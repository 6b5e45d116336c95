package cache_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
	envCrashURL   = "CACHE_CRASH_URL"
	envCrashKey   = "CACHE_CRASH_KEY"
	envCrashPath  = "CACHE_CRASH_PATH"
	envCrashAt    = "CACHE_CRASH_AT"
	envCrashSteps = "CACHE_CRASH_STEPS" // a file the helper appends each step's kind to
)

func TestMain(m *testing.M) {
	if os.Getenv(envCrashURL) != "" {
		crashHelper()
		return
	}
	miniotest.Main(m)
}

// crashHelper pushes one path to the cache at CACHE_CRASH_URL (credentials
// from the environment), counting every step of every write (start, first
// read and every 2 MiB read, end of each object) and sending itself SIGKILL
// at step CACHE_CRASH_AT. Each step's kind goes to the file
// CACHE_CRASH_STEPS, one a line, before the step is taken (the last line
// is the step it died at). It exits 0 if the push completes first.
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
	if name := os.Getenv(envCrashSteps); name != "" {
		if k.steps, err = os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
	}
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
	steps *os.File // if set, gets the kind of every step
	mu    sync.Mutex
	n     int
	at    int
}

// step counts a step of the given kind (see stepKind).
func (k *killer) step(kind string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.n++
	if k.steps != nil {
		if _, err := fmt.Fprintln(k.steps, kind); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
	}
	if k.n == k.at {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute) // the signal is on its way
	}
}

// stepKind names a write step by what it is and what it writes: "start",
// "read first", "read 2MiB" or "end", of a narinfo, a NAR, a NAR of
// unknown size (streamed), a log or another object.
func stepKind(what, key string, size int64) string {
	object := "other"
	switch {
	case strings.HasSuffix(key, ".narinfo"):
		object = "narinfo"
	case strings.HasPrefix(key, "nar/") && size < 0:
		object = "nar streamed"
	case strings.HasPrefix(key, "nar/"):
		object = "nar"
	case strings.HasPrefix(key, "log/"):
		object = "log"
	}
	return what + " " + object
}

func (k *killer) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	k.step(stepKind("start", key, size))
	if err := k.Backend.Put(ctx, key, &stepReader{r: r, k: k, key: key, size: size}, size); err != nil {
		return err
	}
	k.step(stepKind("end", key, size))
	return nil
}

// stepReader counts a step after the first read and after every 2 MiB.
type stepReader struct {
	r    io.Reader
	k    *killer
	key  string
	size int64
	read int64
}

func (s *stepReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 && s.read == 0 {
		s.k.step(stepKind("read first", s.key, s.size))
	} else if n > 0 && s.read/(2<<20) != (s.read+int64(n))/(2<<20) {
		s.k.step(stepKind("read 2MiB", s.key, s.size))
	}
	s.read += int64(n)
	return n, err
}

// TestCrashSafety kills a push with SIGKILL at write steps, each time on an
// empty cache: after each kill the cache verifies, and a new push completes
// it. A first push, not killed, lists every step of the push with its kind
// (start, first read, a 2 MiB read or end of a narinfo, a NAR, a streamed
// NAR or another object); every kill then checks that it died at the step,
// and so the kind, it aimed at.
//
// On a directory the push dies at every step in turn. On S3 it dies at the
// first step of each kind: what the backend decides is what a write cut
// off at each kind of step leaves behind (a PUT cut before its end leaves
// no object, a streamed NAR's unfinished multipart upload no visible
// object), and that is the same at every step of a kind; which of the
// push's writes is cut off is the pusher's business, the same on every
// backend, and the directory case covers every step of that. This makes 13
// kills on S3 where every second step made 26.
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
		name string
		// everyStep kills at every step, not at the first and last of
		// each kind.
		everyStep bool
		// open returns an empty backend, its URL and the environment that
		// lets the helper open it.
		open func(t *testing.T) (cache.Backend, string, []string)
	}{
		{"file", true, func(t *testing.T) (cache.Backend, string, []string) {
			dir := t.TempDir()
			b, err := file.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			return b, "file://" + dir, nil
		}},
		{"s3", false, func(t *testing.T) (cache.Backend, string, []string) {
			srv := miniotest.Start(t)
			bucket := srv.NewBucket(t)
			return openS3(t, srv, bucket), srv.CacheURL(bucket), srv.Env()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// run pushes with a kill at step at (0: none) and returns the
			// kinds of the steps it took.
			run := func(url string, extra []string, at int) ([]string, error) {
				steps := filepath.Join(t.TempDir(), "steps")
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(append(env, extra...), envCrashURL+"="+url, envCrashKey+"="+key.String(),
					envCrashPath+"="+top, envCrashAt+"="+strconv.Itoa(at), envCrashSteps+"="+steps)
				out, err := cmd.CombinedOutput()
				if err != nil && len(out) > 0 {
					t.Logf("helper at step %d: %s", at, out)
				}
				kinds, rerr := os.ReadFile(steps)
				if rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
					t.Fatal(rerr)
				}
				return strings.Split(strings.TrimSuffix(string(kinds), "\n"), "\n"), err
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
			complete := func(b cache.Backend, when string) {
				t.Helper()
				if rep := verify(b, when); rep.NarInfos != 8 {
					t.Fatalf("%s the cache has %d paths, want 8", when, rep.NarInfos)
				}
			}

			b, url, extra := tc.open(t)
			kinds, err := run(url, extra, 0)
			if err != nil {
				t.Fatalf("push without a kill: %v", err)
			}
			complete(b, "after a push without a kill")
			var points []int // steps to kill at, from 1
			seen := map[string]bool{}
			for i, kind := range kinds {
				if tc.everyStep || !seen[kind] {
					points = append(points, i+1)
				}
				seen[kind] = true
			}
			var missing []string
			for _, object := range []string{"narinfo", "nar", "nar streamed", "other"} {
				for _, what := range []string{"start", "read first", "end"} {
					if !seen[what+" "+object] {
						missing = append(missing, what+" "+object)
					}
				}
			}
			if !seen["read 2MiB nar streamed"] {
				missing = append(missing, "read 2MiB nar streamed")
			}
			if len(missing) > 0 {
				t.Fatalf("the push took no step of the kinds %q (it took %q): the test would not kill there", missing, kinds)
			}
			for _, at := range points {
				b, url, extra := tc.open(t)
				took, err := run(url, extra, at)
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Fatalf("push to be killed at step %d (%s) was not killed: %v", at, kinds[at-1], err)
				}
				if len(took) != at || took[at-1] != kinds[at-1] {
					t.Fatalf("push to be killed at step %d (%s) died after %d steps, the last %q: the steps differ from the first push's",
						at, kinds[at-1], len(took), took[len(took)-1])
				}
				verify(b, fmt.Sprintf("after a kill at step %d (%s)", at, kinds[at-1]))
				if _, err := run(url, extra, 0); err != nil {
					t.Fatalf("push after a kill at step %d: %v", at, err)
				}
				complete(b, fmt.Sprintf("after a kill at step %d (%s) and a new push", at, kinds[at-1]))
			}
			t.Logf("killed with SIGKILL at %d of %d steps, of every kind of %q; every time the cache verified and a new push completed it",
				len(points), len(kinds), slices.Sorted(maps.Keys(seen)))
		})
	}
}
