package gc_test

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/homelab-farm/farm/internal/cache/gc"
	"github.com/homelab-farm/farm/internal/testenv/miniotest"
)

// The crash test runs this test binary again as a collector that kills
// itself with SIGKILL at its Nth step (see crashHelper).
const (
	envCrashURL  = "GC_CRASH_URL"
	envCrashKey  = "GC_CRASH_KEY" // trusted public key
	envCrashRoot = "GC_CRASH_ROOT"
	envCrashAt   = "GC_CRASH_AT"
)

// crashStale is the collectors' StaleAfter in the crash test: a killed
// collector's marker goes stale quickly.
const crashStale = 3 * time.Second

// exitLeaseLost is the helper's exit status when its collection stopped
// because its heartbeat fell behind (a loaded machine): a legitimate stop
// that must leave a cache that verifies, like a kill.
const exitLeaseLost = 5

// leaseRetries is how often a step is tried again after the collection
// stopped on a lost lease before reaching it.
const leaseRetries = 3

// crashHelper collects the cache at GC_CRASH_URL keeping GC_CRASH_ROOT,
// counting every write and delete (each key of a batch on a directory, each
// batch on S3) and sending itself SIGKILL at step GC_CRASH_AT. It exits 0 if
// the collection completes first.
func crashHelper() {
	pub, err := cache.ParsePublicKey(os.Getenv(envCrashKey))
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
	k := &killer{at: at}
	var kb cache.Backend = &hooked{Backend: b, before: k.before}
	if _, ok := b.(*file.Backend); ok {
		kb = oneByOne{kb} // a kill between any two files
	}
	c := &gc.Collector{Backend: kb, Trusted: []cache.PublicKey{pub}, StaleAfter: crashStale, Jobs: 2}
	if _, err := c.Collect(context.Background(), []string{os.Getenv(envCrashRoot)}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if errors.Is(err, gc.ErrLeaseLost) {
			os.Exit(exitLeaseLost)
		}
		os.Exit(4)
	}
	os.Exit(0)
}

// oneByOne hides a backend's batch delete.
type oneByOne struct{ cache.Backend }

type killer struct {
	mu sync.Mutex
	n  int
	at int
}

func (k *killer) before(op, key string) {
	if op != "put" && op != "delete" && op != "deletemany" {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.n++
	if k.n == k.at {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute) // the signal is on its way
	}
}

// TestCrashSafety kills a collection with SIGKILL before each of its writes
// and deletes in turn, each time on a fresh cache: after every kill the
// cache verifies, and a new collection completes the job.
func TestCrashSafety(t *testing.T) {
	cases := []struct {
		name string
		// open returns an empty backend, its URL and the environment that
		// lets the helper open it.
		open func(t *testing.T) (cache.Backend, string, []string)
	}{
		{"file", func(t *testing.T) (cache.Backend, string, []string) {
			dir := t.TempDir()
			b, err := file.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			return b, "file://" + dir, nil
		}},
		{"s3", func(t *testing.T) (cache.Backend, string, []string) {
			srv := miniotest.Start(t)
			bucket := srv.NewBucket(t)
			return openS3(t, srv, bucket), srv.CacheURL(bucket), srv.Env()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kills, lost, retries := 0, 0, 0
			for at := 1; ; at++ {
				b, url, extra := tc.open(t)
				f := newFixture(t, b)
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(append(os.Environ(), extra...), envCrashURL+"="+url,
					envCrashKey+"="+f.key.Public().String(), envCrashRoot+"="+f.root, envCrashAt+"="+strconv.Itoa(at))
				out, err := cmd.CombinedOutput()
				if err == nil {
					f.check(t, b)
					break // the collection finished before step at: every step was tried
				}
				var ee *exec.ExitError
				switch {
				case errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL:
					kills++
					retries = 0
					verify(t, b, f.key, fmt.Sprintf("after a kill at step %d", at))
				case errors.As(err, &ee) && ee.ExitCode() == exitLeaseLost:
					// Stopped before step at: the stop must leave the cache
					// as safe as a kill; then step at is tried again.
					lost++
					verify(t, b, f.key, fmt.Sprintf("after a lost lease before step %d", at))
					if retries < leaseRetries {
						retries++
						at--
					} else {
						retries = 0
					}
				default:
					t.Fatalf("collection at step %d failed without being killed: %v\n%s", at, err, out)
				}
				c := &gc.Collector{Backend: b, Trusted: []cache.PublicKey{f.key.Public()}, StaleAfter: crashStale}
				// The killed collection's marker goes stale after
				// crashStale; on a loaded machine this collection may
				// itself lose its lease (and leave a cache that verifies).
				deadline := time.Now().Add(time.Minute + 5*crashStale)
				for {
					_, err := c.Collect(context.Background(), []string{f.root})
					if err == nil {
						break
					}
					if errors.Is(err, gc.ErrLeaseLost) {
						verify(t, b, f.key, fmt.Sprintf("after a lost lease following step %d", at))
					}
					if !(errors.Is(err, gc.ErrRunning) || errors.Is(err, gc.ErrLeaseLost)) || time.Now().After(deadline) {
						t.Fatalf("collection after a stop at step %d: %v", at, err)
					}
					time.Sleep(crashStale / 5)
				}
				f.check(t, b)
				if at > 200 {
					t.Fatal("the collection never completed")
				}
			}
			if kills < 8 {
				t.Errorf("killed at %d points, want at least 8", kills)
			}
			t.Logf("killed with SIGKILL at %d points (%d runs stopped on a lost lease); every time the cache verified and a new collection completed", kills, lost)
		})
	}
}
