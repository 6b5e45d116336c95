package main

import (
	"encoding/json"
	"github.com/homelab-farm/farm/internal/server/servertest"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

type statusCall struct {
	path, auth string
	body       map[string]string
}

// fakeStatusAPI records commit status calls; the first answer is a 502.
func fakeStatusAPI(t testing.TB) (*httptest.Server, func() []statusCall) {
	t.Helper()
	var mu sync.Mutex
	var calls []statusCall
	first := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if first {
			first = false
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var body map[string]string
		_ = json.Unmarshal(b, &body)
		calls = append(calls, statusCall{r.URL.Path, r.Header.Get("Authorization"), body})
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{}`)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []statusCall {
		mu.Lock()
		defer mu.Unlock()
		return append([]statusCall(nil), calls...)
	}
}

// TestServeStatusesOnClaim: a claimed evaluation is reported "pending" to
// every forge its commit came from, with the token from the token file.
func TestServeStatusesOnClaim(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ghAPI, ghCalls := fakeStatusAPI(t)
	fjAPI, fjCalls := fakeStatusAPI(t)
	files := map[string]string{"gh": string(servertest.GHSecret), "cb": string(servertest.CBSecret), "gh-token": "ghtok\n", "cb-token": "cbtok\n"}
	for name, v := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := `public_url = "http://farm.test"
[[repository]]
name = "homelab"
  [[repository.remote]]
  forge = "github"
  url = "https://github.com/alice/homelab"
  api_url = "` + ghAPI.URL + `/"
  secret_files = ["gh"]
  token_file = "gh-token"
  [[repository.remote]]
  forge = "codeberg"
  url = "https://codeberg.org/alice/homelab"
  api_url = "` + fjAPI.URL + `/api/v1/"
  secret_files = ["cb"]
  token_file = "cb-token"
`
	file := filepath.Join(dir, "builder.toml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	base, logs := startServeWith(t, serveHooks{process: holdJobs(10 * time.Millisecond)}, "--config", file, "--state-dir", filepath.Join(dir, "state"), "--workers", "1")

	if s, b := servertest.Post(t, base, servertest.GitHubHook("push", "g1", servertest.ForgeFixture(t, "github/push.json"), servertest.GHSecret)); s != http.StatusAccepted {
		t.Fatalf("github push = %d %s", s, b)
	}
	if s, b := servertest.Post(t, base, servertest.ForgejoHook("push", "c1", servertest.Replace(servertest.ForgeFixture(t, "forgejo/push.json"), "refs/heads/main", "refs/heads/staging"), servertest.CBSecret)); s != http.StatusAccepted {
		t.Fatalf("codeberg push = %d %s", s, b)
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(ghCalls()) < 1 || len(fjCalls()) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("statuses: github %v, forgejo %v\n%s", ghCalls(), fjCalls(), logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	g := ghCalls()[0]
	if g.path != "/repos/alice/homelab/statuses/"+servertest.TestCommit || g.auth != "Bearer ghtok" ||
		g.body["state"] != "pending" || g.body["context"] != "farm/eval" || g.body["target_url"] != "http://farm.test/api/jobs/1" {
		t.Errorf("github status call = %+v", g)
	}
	f := fjCalls()[0]
	if f.path != "/api/v1/repos/alice/homelab/statuses/bffeb74224043ba2feb48d137756c8a9331c449a" || f.auth != "token cbtok" ||
		f.body["state"] != "pending" || f.body["context"] != "farm/eval" {
		t.Errorf("forgejo status call = %+v", f)
	}
}
