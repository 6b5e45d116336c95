package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/queue/sqlite"
	"github.com/homelab-farm/farm/internal/server/servertest"
	"github.com/homelab-farm/farm/internal/testenv"
)

// logWatcher is a concurrency-safe stderr that remembers every line.
type logWatcher struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines []string
	seen  chan struct{}
}

func newLogWatcher() *logWatcher { return &logWatcher{seen: make(chan struct{}, 1)} }

func (l *logWatcher) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.WriteString(line)
			break
		}
		l.lines = append(l.lines, line)
	}
	select {
	case l.seen <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (l *logWatcher) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "")
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// waitAddr waits for the "listening" line and returns the address.
func (l *logWatcher) waitAddr(t testing.TB, errc <-chan error) string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		if m := listeningRE.FindStringSubmatch(l.String()); m != nil {
			return m[1]
		}
		select {
		case <-l.seen:
		case err := <-errc:
			t.Fatalf("serve exited early: %v\n%s", err, l)
		case <-deadline:
			t.Fatalf("serve did not start:\n%s", l)
		}
	}
}

// startServe runs `builder serve` in-process on 127.0.0.1:0 and returns
// its base URL; the test's cleanup stops it and checks it stopped cleanly.
func startServe(t *testing.T, args ...string) (string, *logWatcher) {
	t.Helper()
	return startServeWith(t, serveHooks{}, args...)
}

// holdJobs is a processor that holds each job for d, then completes it
// without evaluating: for tests of claims, leases and crash recovery.
func holdJobs(d time.Duration) pipeline.Processor {
	return func(ctx context.Context, job queue.Job) ([]byte, error) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return []byte(`{"held":true}`), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// startServeWith runs serve in this process with hooks.
func startServeWith(t *testing.T, hooks serveHooks, args ...string) (string, *logWatcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := newLogWatcher()
	errc := make(chan error, 1)
	// No workers unless a test asks: these tests look at the queue itself.
	args = append([]string{"--listen", "127.0.0.1:0", "--workers", "0"}, args...)
	go func() { errc <- runServeWith(ctx, args, mapEnv(nil), io.Discard, logs, hooks) }()
	addr := logs.waitAddr(t, errc)
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("serve returned %v", err)
			}
		case <-time.After(drainTimeout + 5*time.Second):
			t.Errorf("serve did not stop")
		}
	})
	return "http://" + addr, logs
}

// TestServeConfigErrors: a bad config is refused at start with file and line.
func TestServeConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(file, []byte("listen = \"127.0.0.1:0\"\n[queue]\nlease = \"often\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := runServe(context.Background(), []string{"--config", file, "--state-dir", dir}, mapEnv(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), file+":3:") {
		t.Fatalf("runServe(bad config) = %v, want an error at %s:3", err, file)
	}
	if err := runServe(context.Background(), []string{"--listen", "127.0.0.1:0"}, mapEnv(nil), io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "state directory") {
		t.Fatalf("runServe(no state dir) = %v, want a state directory error", err)
	}
}

// TestServeEnvOverrides: environment variables override the file, flags override both.
func TestServeEnvOverrides(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := servertest.WriteConfig(t, dir, "listen = \"127.0.0.1:1\"\nstate_dir = \"nowhere/at/all\"\n")
	state := filepath.Join(dir, "from-env")
	ctx, cancel := context.WithCancel(context.Background())
	logs := newLogWatcher()
	errc := make(chan error, 1)
	env := mapEnv(map[string]string{"BUILDER_CONFIG": cfg, "BUILDER_STATE_DIR": state, "BUILDER_LISTEN": "127.0.0.1:1"})
	go func() { errc <- runServe(ctx, []string{"--listen", "127.0.0.1:0"}, env, io.Discard, logs) }()
	logs.waitAddr(t, errc)
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(state, "queue.db")); err != nil {
		t.Errorf("queue not in BUILDER_STATE_DIR: %v", err)
	}
}

// TestServeShutdownReleasesJobs: a builder stopping cleanly gives the job it
// holds back to the queue at once instead of leaving it to its lease.
func TestServeShutdownReleasesJobs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	ctx, cancel := context.WithCancel(context.Background())
	logs := newLogWatcher()
	errc := make(chan error, 1)
	args := []string{"--listen", "127.0.0.1:0", "--config", servertest.WriteConfig(t, dir, ""), "--state-dir", state,
		"--workers", "1", "--lease", "1h"}
	go func() {
		errc <- runServeWith(ctx, args, mapEnv(nil), io.Discard, logs, serveHooks{process: holdJobs(time.Hour)})
	}()
	base := "http://" + logs.waitAddr(t, errc)
	if s, b := servertest.Post(t, base, servertest.GitHubHook("push", "d1", servertest.ForgeFixture(t, "github/push.json"), servertest.GHSecret)); s != http.StatusAccepted {
		t.Fatalf("push = %d %s", s, b)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return len(servertest.Jobs(t, base, "?state=running")) == 1 },
		"job never claimed\n%s", logs)
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	q, err := sqlite.Open(context.Background(), filepath.Join(state, "queue.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	j, err := q.Get(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != queue.Queued || j.Attempts != 0 {
		t.Errorf("after shutdown: job %s with %d attempts, want queued with 0", j.State, j.Attempts)
	}
}
