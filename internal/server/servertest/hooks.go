package servertest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/forge/github"
	"github.com/homelab-farm/farm/internal/queue"
)

// Secrets of the test configuration's remotes (WriteConfig), and the
// commit of the GitHub push fixture.
var (
	GHSecret      = []byte("gh-secret")
	CBSecret      = []byte("codeberg-secret")
	FJSecret      = []byte("forgejo-secret")
	FJOldSecret   = []byte("forgejo-old-secret")
	OtherGHSecret = []byte("other-repo-secret")
)

// TestCommit is the commit of the GitHub push fixture.
const TestCommit = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"

// ForgeFixture reads a webhook payload of internal/forge's testdata:
// "github/push.json", "forgejo/push_gitea.json".
func ForgeFixture(t testing.TB, name string) []byte {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	dir, file := filepath.Split(name)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(here), "..", "..", "forge", dir, "testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// WriteConfig writes a configuration with one repository on three
// remotes (GitHub, Codeberg, a self-hosted Forgejo) and a second GitHub
// repository, with extra TOML first, and returns its path.
func WriteConfig(t testing.TB, dir string, extra string) string {
	t.Helper()
	for name, s := range map[string][]byte{"gh": GHSecret, "cb": CBSecret, "fj": FJSecret, "fj-old": FJOldSecret, "other": OtherGHSecret} {
		if err := os.WriteFile(filepath.Join(dir, name), append(s, '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	src := extra + `
[[repository]]
name = "homelab"
deploy_branch = "main"
branches = ["main", "staging"]
  [[repository.remote]]
  forge = "github"
  url = "https://github.com/alice/homelab"
  secret_files = ["gh"]
  [[repository.remote]]
  forge = "codeberg"
  url = "https://codeberg.org/alice/homelab"
  secret_files = ["cb"]
  [[repository.remote]]
  forge = "forgejo"
  url = "https://git.home.example.org/alice/homelab"
  secret_files = ["fj", "fj-old"]

[[repository]]
name = "dotfiles"
  [[repository.remote]]
  forge = "github"
  url = "https://github.com/alice/dotfiles"
  secret_files = ["other"]
`
	file := filepath.Join(dir, "builder.toml")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// Hook is a webhook request.
type Hook struct {
	Path    string
	Headers map[string]string
	Body    []byte
}

// GitHubHook is a GitHub webhook, signed with secret unless it is nil.
func GitHubHook(event, delivery string, body, secret []byte) Hook {
	h := map[string]string{"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "Content-Type": "application/json"}
	if secret != nil {
		h["X-Hub-Signature-256"] = github.Sign(body, secret)
	}
	return Hook{Path: "/hooks/github", Headers: h, Body: body}
}

// ForgejoHook is a Forgejo webhook, signed with secret unless it is nil;
// it carries GitHub-style headers too, as Forgejo sends them.
func ForgejoHook(event, delivery string, body, secret []byte) Hook {
	h := map[string]string{"X-Forgejo-Event": event, "X-Forgejo-Delivery": delivery, "Content-Type": "application/json",
		// Forgejo also sends GitHub-style headers; they must not matter.
		"X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
	if secret != nil {
		h["X-Forgejo-Signature"] = forge.SignHex(body, secret)
	}
	return Hook{Path: "/hooks/forgejo", Headers: h, Body: body}
}

// Post sends req to the server at base and returns the status and body.
func Post(t testing.TB, base string, req Hook) (int, []byte) {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, base+req.Path, bytes.NewReader(req.Body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range req.Headers {
		r.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatalf("POST %s: %v", req.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// Jobs is GET /api/jobs with query ("" or "?state=…").
func Jobs(t testing.TB, base, query string) []queue.Job {
	t.Helper()
	resp, err := http.Get(base + "/api/jobs" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/jobs = %s", resp.Status)
	}
	var v struct {
		Jobs []queue.Job `json:"jobs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v.Jobs
}

// Replace returns body with every old replaced by new.
func Replace(body []byte, pairs ...string) []byte {
	return []byte(strings.NewReplacer(pairs...).Replace(string(body)))
}

// Request sends method to url with a bearer token (if any) and body, and
// returns the status and the answer.
func Request(t testing.TB, method, url, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
