// Package git keeps the builder's mirror of each fleet repository: a bare
// repository that commits are fetched into from whichever remote has them,
// and from which Nix evaluates the flake at an exact commit.
package git

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ErrCommitNotFound is returned when no remote has the commit.
var ErrCommitNotFound = errors.New("commit not found on any remote")

// Mirror is a bare repository. Safe for concurrent use.
type Mirror struct {
	Dir string
	mu  sync.Mutex
}

// refFor is the ref that keeps commit reachable in the mirror (so that git
// gc keeps it) and that Nix's git fetcher is pointed at.
func refFor(commit string) string { return "farm/" + commit }

// FlakeRef is the flake reference of dir (relative to the repository root,
// "" for the root) at commit.
func (m *Mirror) FlakeRef(commit, dir string) string {
	ref := "git+file://" + m.Dir + "?ref=" + refFor(commit) + "&rev=" + commit
	if dir = strings.Trim(dir, "/"); dir != "" && dir != "." {
		ref += "&dir=" + dir
	}
	return ref
}

// Fetch makes sure commit is in the mirror, fetching from the remotes in
// order until one has it. It returns the remote that had it ("" if the
// mirror already did).
func (m *Mirror) Fetch(ctx context.Context, remotes []string, commit string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.init(ctx); err != nil {
		return "", err
	}
	if m.has(ctx, commit) {
		return "", m.keep(ctx, commit)
	}
	var errs []error
	for _, remote := range remotes {
		_, err := m.git(ctx, "fetch", "--quiet", "--no-tags", remote, "+refs/heads/*:refs/remotes/"+remoteName(remote)+"/*")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if m.has(ctx, commit) {
			return remote, m.keep(ctx, commit)
		}
	}
	if len(errs) > 0 {
		return "", fmt.Errorf("%w: %s (%w)", ErrCommitNotFound, commit, errors.Join(errs...))
	}
	return "", fmt.Errorf("%w: %s", ErrCommitNotFound, commit)
}

// TreeHash is the git tree hash of dir at commit: it changes exactly when a
// file of the flake (flake.lock included) changes.
func (m *Mirror) TreeHash(ctx context.Context, commit, dir string) (string, error) {
	dir = strings.Trim(dir, "/")
	spec := commit + "^{tree}"
	if dir != "" && dir != "." {
		spec = commit + ":" + dir
	}
	out, err := m.git(ctx, "rev-parse", "--verify", spec)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// FastForward moves branch on remote to commit, only if that is a
// fast-forward: git refuses anything else, and nothing is ever forced.
func (m *Mirror) FastForward(ctx context.Context, remote, branch, commit string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, err := m.git(ctx, "push", "--quiet", "--porcelain", remote, commit+":refs/heads/"+branch)
	return err
}

// BranchHead returns the commit branch points to on remote (git ls-remote).
func BranchHead(ctx context.Context, remote, branch string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := run(ctx, "", "ls-remote", remote, "refs/heads/"+branch)
	if err != nil {
		return "", err
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		return "", fmt.Errorf("branch %s not found", branch)
	}
	return f[0], nil
}

// IsAncestor reports whether a is an ancestor of b (or equal to it).
func (m *Mirror) IsAncestor(ctx context.Context, a, b string) bool {
	_, err := m.git(ctx, "merge-base", "--is-ancestor", a, b)
	return err == nil
}

func (m *Mirror) init(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(m.Dir, "HEAD")); err == nil {
		return nil
	}
	if err := os.MkdirAll(m.Dir, 0o755); err != nil {
		return fmt.Errorf("create mirror: %w", err)
	}
	_, err := m.git(ctx, "init", "--quiet", "--bare")
	return err
}

func (m *Mirror) has(ctx context.Context, commit string) bool {
	_, err := m.git(ctx, "cat-file", "-e", commit+"^{commit}")
	return err == nil
}

func (m *Mirror) keep(ctx context.Context, commit string) error {
	_, err := m.git(ctx, "update-ref", "refs/heads/"+refFor(commit), commit)
	return err
}

// remoteName turns a remote URL into a ref-safe name.
func remoteName(url string) string {
	var b strings.Builder
	for _, r := range url {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return strings.Trim(b.String(), "._")
}

func (m *Mirror) git(ctx context.Context, args ...string) (string, error) {
	return run(ctx, m.Dir, args...)
}

// run runs git in dir ("" for the current directory), never prompting.
func run(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=/bin/false")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %s", args[0], strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
