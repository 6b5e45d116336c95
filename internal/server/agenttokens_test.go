package server

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
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
	a := NewAgentTokens(dir, slog.New(slog.DiscardHandler))
	check := func(step, host, token string, want bool) {
		t.Helper()
		if got := a.Authorized(host, bearer(token)); got != want {
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

	none := NewAgentTokens("", slog.New(slog.DiscardHandler))
	if none.Authorized("alpha", bearer("")) {
		t.Error("no token directory: an agent was authorized")
	}
}
