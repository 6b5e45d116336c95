package git

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ErrCommitNotFound is returned when no remote has the commit.
var ErrCommitNotFound = errors.New("commit not found on any remote")

// ErrNotCommitID is wrapped by the errors for a commit that is not a full
// commit id.
var ErrNotCommitID = errors.New("not a full commit id (40 or 64 lowercase hex digits)")

// IsCommitID reports whether s is a full commit id: 40 (SHA-1) or 64
// (SHA-256) lowercase hex digits. Nothing shorter or symbolic ("HEAD~1",
// "main") is one.
func IsCommitID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

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
	if !IsCommitID(commit) {
		return "", fmt.Errorf("fetch %q: %w", commit, ErrNotCommitID)
	}
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
		_, err := m.git(ctx, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", remote, "+refs/heads/*:refs/remotes/"+remoteName(remote)+"/*")
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

// ValidBranch reports whether name is a branch name git accepts (git
// check-ref-format --branch): no "..", no glob or control characters, no
// leading "-".
func ValidBranch(ctx context.Context, name string) bool {
	if name == "" || strings.HasPrefix(name, "-") || strings.HasPrefix(name, "@") {
		return false
	}
	_, err := run(ctx, "", "check-ref-format", "refs/heads/"+name)
	return err == nil
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
	if !IsCommitID(f[0]) {
		return "", fmt.Errorf("head of branch %s: %q: %w", branch, f[0], ErrNotCommitID)
	}
	return f[0], nil
}

// IsAncestor reports whether a is an ancestor of b (or equal to it).
func (m *Mirror) IsAncestor(ctx context.Context, a, b string) bool {
	_, err := m.git(ctx, "merge-base", "--is-ancestor", a, b)
	return err == nil
}

// init makes the mirror if it does not exist yet (with no templates, so no
// hooks directory), and keeps an existing one clean: no hooks directory,
// no FETCH_HEAD, no refs of remotes named after their URLs.
func (m *Mirror) init(ctx context.Context) error {
	if m.Dir == "" {
		return errNoDir
	}
	if _, err := os.Stat(filepath.Join(m.Dir, "HEAD")); err != nil {
		if err := os.MkdirAll(m.Dir, 0o700); err != nil {
			return fmt.Errorf("create mirror: %w", err)
		}
		if _, err := m.git(ctx, "init", "--quiet", "--bare", "--template="); err != nil {
			return err
		}
	}
	for _, name := range []string{"hooks", "FETCH_HEAD"} {
		if err := os.RemoveAll(filepath.Join(m.Dir, name)); err != nil {
			return fmt.Errorf("clean mirror: %w", err)
		}
	}
	return m.dropURLRefs(ctx)
}

// dropURLRefs deletes remote refs not named by remoteName (older mirrors
// named them after the URL, credentials included).
func (m *Mirror) dropURLRefs(ctx context.Context) error {
	out, err := m.git(ctx, "for-each-ref", "--format=%(refname)", "refs/remotes/")
	if err != nil {
		return err
	}
	var del strings.Builder
	for ref := range strings.FieldsSeq(out) {
		name, _, _ := strings.Cut(strings.TrimPrefix(ref, "refs/remotes/"), "/")
		if !isRemoteName(name) {
			fmt.Fprintf(&del, "delete %s\n", ref)
		}
	}
	if del.Len() == 0 {
		return nil
	}
	_, err = runInput(ctx, m.Dir, del.String(), "update-ref", "--stdin")
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

// remoteName is the name of the refs fetched from url: a hash of it, so
// that no part of the URL (its credentials least of all) is written down.
func remoteName(url string) string {
	sum := sha256.Sum256([]byte(url))
	return "r-" + hex.EncodeToString(sum[:10])
}

func isRemoteName(s string) bool {
	h, ok := strings.CutPrefix(s, "r-")
	_, err := hex.DecodeString(h)
	return ok && len(h) == 20 && err == nil
}

var errNoDir = errors.New("git mirror has no directory")

func (m *Mirror) git(ctx context.Context, args ...string) (string, error) {
	if m.Dir == "" {
		return "", errNoDir
	}
	return run(ctx, m.Dir, args...)
}

// run runs git in dir ("" for the current directory), never prompting.
func run(ctx context.Context, dir string, args ...string) (string, error) {
	return runInput(ctx, dir, "", args...)
}

// safeConfig is given to every git invocation: no hook ever runs, and no
// reflog records what a fetch or push did (with the remote's URL).
var safeConfig = []string{"-c", "core.hooksPath=/dev/null", "-c", "core.logAllRefUpdates=false"}

// runInput runs git in dir with stdin, never prompting. Its errors carry
// git's message with the credentials of any URL in args redacted.
func runInput(ctx context.Context, dir, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append(append([]string{}, safeConfig...), args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=/bin/false")
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		for _, a := range args {
			if u, err := url.Parse(a); err == nil && u.User != nil {
				msg = strings.ReplaceAll(msg, a, Redact(a))
				msg = strings.ReplaceAll(msg, u.User.String(), "redacted")
			}
		}
		return "", fmt.Errorf("git %s: %s", args[0], msg)
	}
	return stdout.String(), nil
}

// Redact returns s with the user information of a URL (a token, a user
// and password) replaced by "redacted"; anything that is not a URL with
// user information is returned unchanged.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = url.User("redacted")
	return u.String()
}
