package main

import (
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/server/servertest"
	"github.com/homelab-farm/farm/internal/testenv"
)

func writeToken(t *testing.T, dir, host, token string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, host), []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServeReloadsAgentTokensOnHangup: serve takes a changed agent token
// after SIGHUP, and refuses the old one.
func TestServeReloadsAgentTokensOnHangup(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "agents")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	writeToken(t, tokens, "alpha", "old-token\n")
	base, _ := startServe(t, "--config", servertest.WriteConfig(t, dir, ""), "--state-dir", filepath.Join(dir, "state"),
		"--agent-tokens-dir", tokens)
	seq := func(token string) int {
		t.Helper()
		s, _ := servertest.Request(t, http.MethodGet, base+"/api/hosts/alpha/seq", token, "")
		return s
	}
	if s := seq("old-token"); s != http.StatusOK {
		t.Fatalf("old token before the change = %d", s)
	}
	writeToken(t, tokens, "alpha", "new-token\n")
	if s := seq("new-token"); s != http.StatusUnauthorized {
		t.Fatalf("new token before SIGHUP = %d, want 401 (tokens are not read per request)", s)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return seq("new-token") == http.StatusOK }, "new token refused after SIGHUP")
	if s := seq("old-token"); s != http.StatusUnauthorized {
		t.Errorf("old token after SIGHUP = %d, want 401", s)
	}
}
