package main

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/server/servertest"
)

// TestServeStatusesOnlyToConfiguredRepo: a signed push whose payload names
// another repository (full_name) than the configured remote's gets its
// statuses on the configured repository only.
func TestServeStatusesOnlyToConfiguredRepo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	api, calls := fakeStatusAPI(t)
	files := map[string]string{"gh": string(servertest.GHSecret), "gh-token": "ghtok\n"}
	for name, v := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := `[[repository]]
name = "homelab"
  [[repository.remote]]
  forge = "github"
  url = "https://github.com/alice/homelab"
  api_url = "` + api.URL + `/"
  secret_files = ["gh"]
  token_file = "gh-token"
`
	file := filepath.Join(dir, "builder.toml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	base, logs := startServeWith(t, serveHooks{process: holdJobs(10 * time.Millisecond)}, "--config", file, "--state-dir", filepath.Join(dir, "state"), "--workers", "1")

	body := servertest.Replace(servertest.ForgeFixture(t, "github/push.json"), `"full_name": "alice/homelab"`, `"full_name": "mallory/victim"`)
	if s, b := servertest.Post(t, base, servertest.GitHubHook("push", "g1", body, servertest.GHSecret)); s != http.StatusAccepted {
		t.Fatalf("github push = %d %s", s, b)
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(calls()) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("statuses: %v\n%s", calls(), logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range calls() {
		if c.path != "/repos/alice/homelab/statuses/"+servertest.TestCommit {
			t.Errorf("status sent to %s, want only /repos/alice/homelab/statuses/%s", c.path, servertest.TestCommit)
		}
	}
}

// TestStatusClientsBoundToConfiguredRepo: the clients the pipeline's
// reports use set statuses on the configured repository whatever
// repository a job names.
func TestStatusClientsBoundToConfiguredRepo(t *testing.T) {
	dir := t.TempDir()
	api, calls := fakeStatusAPI(t)
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Repositories: []config.Repository{{Name: "homelab", Remotes: []config.Remote{{
		Forge: forge.GitHub, URL: "https://github.com/alice/homelab", APIURL: api.URL + "/", TokenFile: token,
	}}}}}
	clients, err := statusClients(cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c := clients[forge.NormalizeURL("https://github.com/alice/homelab")]
	if c == nil {
		t.Fatal("no client for the configured remote")
	}
	if err := c.SetStatus(context.Background(), "mallory/victim", servertest.TestCommit, forge.Status{State: forge.StatePending, Context: "farm/eval"}); err != nil {
		t.Fatal(err)
	}
	got := calls()
	if len(got) != 1 || got[0].path != "/repos/alice/homelab/statuses/"+servertest.TestCommit {
		t.Errorf("status calls %+v, want one to /repos/alice/homelab/statuses/%s", got, servertest.TestCommit)
	}
}

func TestMirrorOfStaysUnderRoot(t *testing.T) {
	root := t.TempDir()
	if got := mirrorOf(root, "homelab").Dir; got != filepath.Join(root, "homelab.git") {
		t.Errorf("mirrorOf(homelab) = %q", got)
	}
	for _, repo := range []string{"", "../x", "a/b", "..", "a\x00"} {
		m := mirrorOf(root, repo)
		if m.Dir != "" {
			t.Errorf("mirrorOf(%q) = %q, want no directory", repo, m.Dir)
		}
		if _, err := m.Fetch(context.Background(), nil, strings.Repeat("a", 40)); err == nil {
			t.Errorf("mirror of %q fetched", repo)
		}
	}
}
