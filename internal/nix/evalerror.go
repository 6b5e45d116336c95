package nix

import (
	"context"
	"errors"
	"os/exec"
	"regexp"
	"strings"

	"github.com/homelab-farm/farm/internal/textcut"
)

// FailureClass says whether a failed evaluation may pass on retry.
type FailureClass int

const (
	// Infrastructure failures may pass on retry: the evaluation ran out of
	// memory or time, the store or its daemon could not be reached or was
	// locked, a download failed, or nix did not run at all.
	Infrastructure FailureClass = iota
	// Permanent failures are the flake's own errors (syntax error,
	// undefined variable, missing attribute, failed assertion, type error,
	// infinite recursion, throw, abort): evaluating the same commit again
	// fails the same way.
	Permanent
)

func (c FailureClass) String() string {
	if c == Permanent {
		return "permanent"
	}
	return "infrastructure"
}

// infrastructureErrors are parts of Nix's error messages about the
// machine rather than the flake (matched without regard to case).
var infrastructureErrors = []string{
	"out of memory", "bad_alloc", "cannot allocate memory",
	"no space left on device", "too many open files", "resource temporarily unavailable",
	"unable to fork", "cannot connect to socket", "cannot connect to daemon",
	"connection refused", "connection reset", "broken pipe", "unexpected end-of-file",
	"database is locked", "database disk image", "is busy", "opening lock file", "waiting for lock",
	"unable to download", "couldn't resolve", "could not resolve", "couldn't connect",
	"failed to connect", "timed out", "timeout was reached", "network is unreachable",
	"temporary failure in name resolution", "program 'git' failed", "fatal: unable to access",
}

// ClassifyEval says whether err, from Eval, EvalHost or Hosts, may pass on
// retry. Only a nix that ran to its end (exit status 1) and reported an
// error about the flake is Permanent: a timeout, the memory budget, a kill
// by a signal (the kernel's OOM killer), an error naming the store, the
// daemon, a lock or the network, and anything unrecognised are
// Infrastructure, so that a failure of the machine is never taken for one
// of the flake.
func ClassifyEval(err error) FailureClass {
	if err == nil {
		return Infrastructure
	}
	if errors.Is(err, ErrMemoryBudget) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return Infrastructure
	}
	var nerr *Error
	if !errors.As(err, &nerr) {
		return Infrastructure
	}
	return ClassifyEvalOutput(nerr.Stderr, nerr.Err)
}

// ClassifyEvalOutput classifies a failed `nix eval` from what it printed on
// stderr and how it exited (the *exec.ExitError of its Wait); see
// ClassifyEval.
func ClassifyEvalOutput(stderr string, exit error) FailureClass {
	var ee *exec.ExitError
	if !errors.As(exit, &ee) || ee.ExitCode() != 1 {
		return Infrastructure // killed by a signal, or not nix's own error exit
	}
	msg, ok := primaryError(stripANSI(stderr))
	if !ok {
		return Infrastructure
	}
	lower := strings.ToLower(msg)
	for _, s := range infrastructureErrors {
		if strings.Contains(lower, s) {
			return Infrastructure
		}
	}
	return Permanent
}

var (
	ansiEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)
	// sourcePrefix is the store copy of a flake's source that Nix names
	// in positions: "/nix/store/<hash>-source/hosts/x/default.nix".
	sourcePrefix = regexp.MustCompile(`/nix/store/[0-9a-df-np-sv-z]{32}-source/`)
	position     = regexp.MustCompile(`^\s*at (.+:[0-9]+:[0-9]+):?$`)
	// flakeRef matches a flake reference quoted in a message:
	// "flake 'git+file:///srv/mirror?ref=main&rev=…' does not provide".
	flakeRef = regexp.MustCompile(` ?'(?:git\+[a-z]+|hg\+[a-z]+|path|github|gitlab|sourcehut|tarball\+?[a-z]*|file\+?[a-z]*):[^']*'`)
	// alternatives lists the attribute paths Nix tried; the last is the
	// one the flake was asked for.
	alternatives = regexp.MustCompile(`does not provide attribute (?:'[^']*', )*'[^']*' or ('[^']*')`)
	// wrapper is what the farm and the nix package put before Nix's own
	// message: "evaluate git+file:///…?rev=…: nix eval: ".
	wrapper = regexp.MustCompile(`^(?:evaluate \S+: )?(?:nix(?:-[a-z]+)?(?: [a-z-]+)?: )?`)
)

func stripANSI(s string) string {
	return strings.ReplaceAll(ansiEscape.ReplaceAllString(s, ""), "\r", "")
}

// primaryError returns Nix's main error message from its output: the
// first "error:" line (warnings before it, retried downloads included, are
// skipped) with the lines continuing it, and its position ("at …") if one
// follows. ok is false when there is no error line.
func primaryError(out string) (msg string, ok bool) {
	msg, _, ok = splitError(out)
	return msg, ok
}

func splitError(out string) (msg, pos string, ok bool) {
	lines := strings.Split(out, "\n")
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "error:") {
			start = i
			break
		}
	}
	if start < 0 {
		return "", "", false
	}
	parts := []string{strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(lines[start]), "error:"))}
	i := start + 1
	for ; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if l == "" && len(parts) == 1 && parts[0] == "" {
			continue // "error:" alone, the message on the next lines
		}
		if l == "" || position.MatchString(lines[i]) || strings.HasPrefix(l, "(use '--show-trace'") || strings.HasPrefix(l, "…") {
			break
		}
		parts = append(parts, l)
	}
	return strings.Join(strings.Fields(strings.Join(parts, " ")), " "), findPosition(lines[i:]), true
}

// findPosition returns the first position ("at file:line:col:") in lines
// before the next error or trace frame.
func findPosition(lines []string) string {
	for _, l := range lines {
		if m := position.FindStringSubmatch(l); m != nil {
			return m[1]
		}
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "error:") || strings.HasPrefix(t, "…") {
			return ""
		}
	}
	return ""
}

// ErrorMessage is the status description of a failed nix command: Nix's
// own error message and where it happened, "error: undefined variable
// 'pkgz' at hosts/stolas/default.nix:3:5", in at most limit bytes (which
// keeps it within a limit in characters too, GitHub's 140).
// text is what nix printed on stderr, or an error's text that wraps it
// ("evaluate git+file://…: nix eval: undefined variable …"). Colours, the
// flake's store path and flake references (with their ?ref=…&rev=…) are
// left out; the full text belongs on the page the status links to.
func ErrorMessage(text string, limit int) string {
	text = stripANSI(text)
	msg, pos, ok := splitError(text)
	if !ok {
		// Not nix's stderr: an error's text, whose first line is the
		// message once the wrappers are gone.
		lines := strings.Split(text, "\n")
		for i, l := range lines {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "warning:") {
				msg, pos = wrapper.ReplaceAllString(l, ""), findPosition(lines[i+1:])
				break
			}
		}
	}
	msg = alternatives.ReplaceAllString(msg, "does not provide attribute $1")
	msg = flakeRef.ReplaceAllString(msg, "")
	msg = sourcePrefix.ReplaceAllString(msg, "")
	msg = strings.TrimPrefix(msg, "error: ")
	pos = sourcePrefix.ReplaceAllString(pos, "")
	if msg == "" {
		msg = "nix failed"
	}
	out := "error: " + msg
	if pos == "" {
		return textcut.Bytes(out, limit)
	}
	// The position stays when the message keeps a readable start.
	at := " at " + pos
	if n := len(at); limit-n >= 24 {
		return textcut.Bytes(out, limit-n) + at
	}
	return textcut.Bytes(out+at, limit)
}

// DescribeError is ErrorMessage for an error from this package: the nix
// command's stderr when err carries it, the error's text otherwise.
func DescribeError(err error, limit int) string {
	var nerr *Error
	if errors.As(err, &nerr) && strings.Contains(nerr.Stderr, "error:") {
		return ErrorMessage(nerr.Stderr, limit)
	}
	return ErrorMessage(err.Error(), limit)
}
