package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/farm"
	"github.com/homelab-farm/farm/internal/server/servertest"
	"github.com/homelab-farm/farm/internal/testenv"
)

// startServe runs `builder serve` args in this process on 127.0.0.1:0 and
// returns its base URL (told by serve once it listens) and its log; the
// test's cleanup stops it and checks it stopped cleanly.
func startServe(t *testing.T, args ...string) (string, *testenv.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testenv.Buffer{}
	errc := make(chan error, 1)
	listening := make(chan net.Addr, 1)
	// No workers unless a test asks.
	args = append([]string{"--listen", "127.0.0.1:0", "--workers", "0"}, args...)
	go func() {
		errc <- farm.Serve(ctx, args, mapEnv(nil), io.Discard, logs, farm.ServeOptions{Listening: func(a net.Addr) { listening <- a }})
	}()
	var addr net.Addr
	select {
	case addr = <-listening:
	case err := <-errc:
		cancel()
		t.Fatalf("serve exited early: %v\n%s", err, logs)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("serve returned %v", err)
			}
		case <-time.After(farm.DrainTimeout + 5*time.Second):
			t.Errorf("serve did not stop")
		}
	})
	return "http://" + addr.String(), logs
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
	errc := make(chan error, 1)
	env := mapEnv(map[string]string{"BUILDER_CONFIG": cfg, "BUILDER_STATE_DIR": state, "BUILDER_LISTEN": "127.0.0.1:1"})
	listening := make(chan net.Addr, 1)
	go func() {
		errc <- farm.Serve(ctx, []string{"--listen", "127.0.0.1:0"}, env, io.Discard, io.Discard,
			farm.ServeOptions{Listening: func(a net.Addr) { listening <- a }})
	}()
	select {
	case a := <-listening:
		if a.String() == "127.0.0.1:1" {
			t.Errorf("serve listens on %s: the flag did not override the environment", a)
		}
	case err := <-errc:
		t.Fatalf("serve exited early: %v", err)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(state, "queue.db")); err != nil {
		t.Errorf("queue not in BUILDER_STATE_DIR: %v", err)
	}
}
