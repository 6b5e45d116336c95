package git_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/git"
)

func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// source makes a repository with one commit on main.
func source(t *testing.T) (dir, commit string) {
	t.Helper()
	dir = t.TempDir()
	gitIn(t, dir, "init", "-q", "-b", "main")
	return dir, commitFile(t, dir, "one")
}

func commitFile(t *testing.T, dir, body string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	gitIn(t, dir, "add", "f")
	gitIn(t, dir, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", body)
	return gitIn(t, dir, "rev-parse", "HEAD")
}

func TestIsCommitID(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{strings.Repeat("a", 40), true},
		{strings.Repeat("0", 64), true},
		{"0123456789abcdef0123456789abcdef01234567", true},
		{strings.Repeat("A", 40), false},
		{strings.Repeat("a", 39), false},
		{strings.Repeat("a", 41), false},
		{"HEAD~1", false},
		{"main", false},
		{"", false},
		{strings.Repeat("g", 40), false},
	}
	for _, tt := range tests {
		if got := git.IsCommitID(tt.s); got != tt.want {
			t.Errorf("IsCommitID(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestFetchRefusesSymbolicCommit(t *testing.T) {
	src, _ := source(t)
	m := &git.Mirror{Dir: filepath.Join(t.TempDir(), "m.git")}
	for _, c := range []string{"main", "HEAD~1", "HEAD"} {
		if _, err := m.Fetch(context.Background(), []string{src}, c); !errors.Is(err, git.ErrNotCommitID) {
			t.Errorf("Fetch(%q) = %v, want ErrNotCommitID", c, err)
		}
	}
}

// TestHookNeverRuns: a hook in the mirror (as a build could once plant
// one) never runs when git fetches, and the mirror keeps no hooks
// directory.
func TestHookNeverRuns(t *testing.T) {
	ctx := context.Background()
	src, c1 := source(t)
	m := &git.Mirror{Dir: filepath.Join(t.TempDir(), "m.git")}
	if _, err := m.Fetch(ctx, []string{src}, c1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(m.Dir, "hooks")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a new mirror has a hooks directory (%v)", err)
	}
	mark := filepath.Join(t.TempDir(), "hook-ran")
	if err := os.MkdirAll(filepath.Join(m.Dir, "hooks"), 0o755); err != nil {
		t.Fatal(err)
	}
	hook := "#!/bin/sh\necho $0 >> " + mark + "\n"
	for _, name := range []string{"reference-transaction", "post-update", "post-checkout"} {
		if err := os.WriteFile(filepath.Join(m.Dir, "hooks", name), []byte(hook), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c2 := commitFile(t, src, "two")
	if _, err := m.Fetch(ctx, []string{src}, c2); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(mark); err == nil {
		t.Fatalf("a hook ran: %s", b)
	}
	if _, err := os.Stat(filepath.Join(m.Dir, "hooks")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the mirror kept its hooks directory (%v)", err)
	}
	// A hook in the hooks directory named by the mirror's own config does
	// not run either: every invocation overrides core.hooksPath.
	hooks := t.TempDir()
	if err := os.WriteFile(filepath.Join(hooks, "reference-transaction"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}
	gitIn(t, m.Dir, "config", "core.hooksPath", hooks)
	c3 := commitFile(t, src, "three")
	if _, err := m.Fetch(ctx, []string{src}, c3); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(mark); err == nil {
		t.Fatalf("a hook ran: %s", b)
	}
}

// gitHTTP serves the bare repositories under root with git http-backend,
// asking for user and password.
func gitHTTP(t *testing.T, root, user, password string) *httptest.Server {
	t.Helper()
	execPath := gitIn(t, "", "--exec-path")
	backend := &cgi.Handler{
		Path: filepath.Join(execPath, "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestCredentialsNeverOnDisk: a clone URL with user and password fetches,
// and the password is in no file name or content of the mirror, nor in
// the error of a refused fetch.
func TestCredentialsNeverOnDisk(t *testing.T) {
	ctx := context.Background()
	src, c1 := source(t)
	root := t.TempDir()
	gitIn(t, "", "clone", "-q", "--bare", src, filepath.Join(root, "fleet.git"))
	const secret = "secretpass"
	srv := gitHTTP(t, root, "user", secret)
	remote := strings.Replace(srv.URL, "http://", "http://user:"+secret+"@", 1) + "/fleet.git"

	m := &git.Mirror{Dir: filepath.Join(t.TempDir(), "m.git")}
	from, err := m.Fetch(ctx, []string{remote}, c1)
	if err != nil || from != remote {
		t.Fatalf("Fetch = %q, %v; want fetched from the remote", from, err)
	}
	// A second remote with a wrong password fails without echoing it.
	wrong := strings.Replace(srv.URL, "http://", "http://user:wrong"+secret+"@", 1) + "/fleet.git"
	c2 := commitFile(t, src, "two")
	gitIn(t, filepath.Join(root, "fleet.git"), "fetch", "-q", src, "+refs/heads/*:refs/heads/*")
	_, err = m.Fetch(ctx, []string{wrong, remote}, c2)
	if err != nil {
		t.Fatalf("Fetch past a refused remote: %v", err)
	}
	_, err = m.Fetch(ctx, []string{wrong}, strings.Repeat("f", 40))
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("Fetch with a wrong password: %v; want an error without the password", err)
	}
	if !git.IsCommitID(c2) || !strings.Contains(gitIn(t, m.Dir, "cat-file", "-t", c2), "commit") {
		t.Fatalf("mirror lacks %s", c2)
	}

	var found []string
	err = filepath.WalkDir(m.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.Contains(p, secret) {
			found = append(found, "name "+p)
		}
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if bytes.Contains(b, []byte(secret)) {
				found = append(found, "content of "+p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) > 0 {
		t.Errorf("the password is on disk: %v", found)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://user:pass@h/x.git", "http://redacted@h/x.git"},
		{"https://token@github.com/a/b", "https://redacted@github.com/a/b"},
		{"https://github.com/a/b", "https://github.com/a/b"},
		{"/srv/git/x", "/srv/git/x"},
		{"git@github.com:a/b", "git@github.com:a/b"},
	}
	for _, tt := range tests {
		if got := git.Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestOldURLRefsDropped: refs an older mirror named after a remote's URL
// (credentials included) are deleted on the next fetch.
func TestOldURLRefsDropped(t *testing.T) {
	ctx := context.Background()
	src, c1 := source(t)
	m := &git.Mirror{Dir: filepath.Join(t.TempDir(), "m.git")}
	if _, err := m.Fetch(ctx, []string{src}, c1); err != nil {
		t.Fatal(err)
	}
	old := "refs/remotes/http___farm_farmfarm1_127.0.0.1_fleet.git/main"
	gitIn(t, m.Dir, "update-ref", old, c1)
	gitIn(t, m.Dir, "pack-refs", "--all")
	c2 := commitFile(t, src, "two")
	if _, err := m.Fetch(ctx, []string{src}, c2); err != nil {
		t.Fatal(err)
	}
	if refs := gitIn(t, m.Dir, "for-each-ref", "--format=%(refname)"); strings.Contains(refs, "farmfarm1") {
		t.Errorf("old ref kept: %s", refs)
	}
	if b, _ := os.ReadFile(filepath.Join(m.Dir, "packed-refs")); bytes.Contains(b, []byte("farmfarm1")) {
		t.Errorf("packed-refs keeps the old ref: %s", b)
	}
}

func TestValidBranch(t *testing.T) {
	for name, want := range map[string]bool{
		"main": true, "feature/x": true, "pull/7": true,
		"": false, "-x": false, "a..b": false, "a b": false, "x~1": false, "HEAD~1": false,
		"*": false, "a:b": false, "a\nb": false, "@{-1}": false, "x.lock": false,
	} {
		if got := git.ValidBranch(context.Background(), name); got != want {
			t.Errorf("ValidBranch(%q) = %v, want %v", name, got, want)
		}
	}
}
