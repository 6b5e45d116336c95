package fleettest

import (
	_ "embed"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/testenv"
)

// FlakeNix is the example fleet's flake.nix.
//
//go:embed flake.nix
var FlakeNix string

// Host is one host of the example fleet.
type Host struct {
	System  string `json:"system"`
	Version string `json:"version"`          // change it to change the host's closure
	Kind    string `json:"kind,omitempty"`   // "nixos" (default) or "darwin"
	Broken  bool   `json:"broken,omitempty"` // evaluation fails
	Fail    bool   `json:"fail,omitempty"`   // build fails
	Sleep   int    `json:"sleep,omitempty"`  // seconds the build takes
	// Packages become store paths "<name>-<version>" in the host's closure.
	Packages map[string]string `json:"packages,omitempty"`
	// Work is a fixed amount of CPU work the build does (iterations of a
	// shell loop, about a million a second): unlike Sleep, it takes longer
	// when builds share a core.
	Work int `json:"work,omitempty"`
	// Wave puts the host in a rollout wave; when any host has one, the
	// flake has a farm.deploy output listing every host (wave 0 unless
	// set). Window ("always", "when-idle", "HH:MM-HH:MM"), OutsideWindow
	// ("boot", "wait") and Asleep ("wait", "skip") go there too; empty: the
	// defaults of nix/lib/deploy.nix.
	Wave          *int   `json:"wave,omitempty"`
	Window        string `json:"window,omitempty"`
	OutsideWindow string `json:"outsideWindow,omitempty"`
	Asleep        string `json:"asleep,omitempty"`
}

// WaveOf returns a wave number for Host.Wave.
func WaveOf(n int) *int { return &n }

// Repo is an example fleet repository.
type Repo struct {
	Dir string
}

// New creates a repository with one commit of hosts and returns it.
func New(t testing.TB, hosts map[string]Host) *Repo {
	t.Helper()
	r := &Repo{Dir: t.TempDir()}
	r.git(t, "init", "-q", "-b", "main")
	if err := os.MkdirAll(filepath.Join(r.Dir, "nix"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.write(t, "nix/flake.nix", FlakeNix)
	r.write(t, "nix/busybox", testenv.Aarch64(t))
	r.write(t, "README.md", "example fleet\n")
	r.Commit(t, hosts, "fleet")
	return r
}

// Commit replaces the fleet's hosts and commits; it returns the commit id.
func (r *Repo) Commit(t testing.TB, hosts map[string]Host, msg string) string {
	t.Helper()
	body, err := json.MarshalIndent(hosts, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	r.write(t, "nix/hosts.json", string(body)+"\n")
	return r.CommitAll(t, msg)
}

// CommitFile writes one file (relative to the repository) and commits.
func (r *Repo) CommitFile(t testing.TB, path, body, msg string) string {
	t.Helper()
	r.write(t, path, body)
	return r.CommitAll(t, msg)
}

// CommitAll commits every change and returns the commit id.
func (r *Repo) CommitAll(t testing.TB, msg string) string {
	t.Helper()
	r.git(t, "add", "-A")
	r.git(t, "-c", "user.name=fleet", "-c", "user.email=fleet@example.invalid", "commit", "-q", "--allow-empty", "-m", msg)
	return strings.TrimSpace(r.git(t, "rev-parse", "HEAD"))
}

func (r *Repo) write(t testing.TB, path, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(r.Dir, path), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (r *Repo) git(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}
