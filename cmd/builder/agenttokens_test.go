package main

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/testenv"
)

func bearer(token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

func writeToken(t *testing.T, dir, host, token string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, host), []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestAgentTokensLoadedOnce: tokens are read at start and by Load only; a
// changed file takes effect at the next Load, which also drops removed and
// empty tokens.
func TestAgentTokensLoadedOnce(t *testing.T) {
	dir := t.TempDir()
	writeToken(t, dir, "alpha", "old-token\n")
	writeToken(t, dir, "beta", "beta-token")
	writeToken(t, dir, "empty", " \n")
	a := newAgentTokens(dir, slog.New(slog.DiscardHandler))
	check := func(step, host, token string, want bool) {
		t.Helper()
		if got := a.authorized(host, bearer(token)); got != want {
			t.Errorf("%s: authorized(%s, %s) = %v, want %v", step, host, token, got, want)
		}
	}
	check("start", "alpha", "old-token", true)
	check("start", "beta", "beta-token", true)
	check("start", "empty", "", false)
	check("start", "alpha", "beta-token", false)
	check("start", "../alpha", "old-token", false)
	check("start", "gamma", "", false)

	writeToken(t, dir, "alpha", "new-token\n")
	if err := os.Remove(filepath.Join(dir, "beta")); err != nil {
		t.Fatal(err)
	}
	check("before reload", "alpha", "old-token", true)
	check("before reload", "alpha", "new-token", false)

	a.Load()
	check("after reload", "alpha", "new-token", true)
	check("after reload", "alpha", "old-token", false)
	check("after reload", "beta", "beta-token", false)

	none := newAgentTokens("", slog.New(slog.DiscardHandler))
	if none.authorized("alpha", bearer("")) {
		t.Error("no token directory: an agent was authorized")
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
	base, _ := startServe(t, "--config", writeServeConfig(t, dir, ""), "--state-dir", filepath.Join(dir, "state"),
		"--agent-tokens-dir", tokens)
	seq := func(token string) int {
		t.Helper()
		s, _ := request(t, http.MethodGet, base+"/api/hosts/alpha/seq", token, "")
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
