package nix

import (
	"errors"
	"regexp"
	"strings"
)

var (
	// builderFailed is Nix's line for a failed derivation build.
	builderFailed = regexp.MustCompile(`error: builder for '/nix/store/[0-9a-z]{32}-([^']+)\.drv' failed with (exit code \d+|signal \d+)`)
	// progress lines Nix prints between a build's own log lines.
	nixProgress = regexp.MustCompile(`^(building '|these \d+ derivations? will be built|this derivation will be built|copying path|error: |warning: |For full logs, run|\s*/nix/store/\S+\.drv$)`)
)

// BuildFailure is why a build failed, from what nix-store --realise or nix
// build printed: "builder for nixos-system-stolas failed with exit code 1:
// build of stolas fails on purpose" (the derivation's name, not its store
// path, and the build log's last line, the one that usually says why). ok
// is false when the text holds no failed builder (a remote machine that
// could not be reached, a timeout: the caller keeps the error's own text).
func BuildFailure(stderr string) (msg string, ok bool) {
	lines := strings.Split(stripANSI(stderr), "\n")
	at := -1
	var m []string
	for i := len(lines) - 1; i >= 0; i-- {
		if m = builderFailed.FindStringSubmatch(lines[i]); m != nil {
			at = i
			break
		}
	}
	if at < 0 {
		return "", false
	}
	msg = "builder for " + m[1] + " failed with " + m[2]
	if why := lastLogLine(lines, at); why != "" {
		msg += ": " + why
	}
	return msg, true
}

// lastLogLine is the build log's last line around Nix's error at line at:
// Nix 2.8's nix-store quotes the tail after the error ("last 10 log lines:",
// each "> line"); nix build streams the log before it.
func lastLogLine(lines []string, at int) string {
	last := ""
	for _, l := range lines[at+1:] {
		t := strings.TrimSpace(l)
		if rest, quoted := strings.CutPrefix(t, ">"); quoted {
			if rest = strings.TrimSpace(rest); rest != "" {
				last = rest
			}
		}
	}
	if last != "" {
		return last
	}
	for i := at - 1; i >= 0; i-- {
		t := strings.TrimSpace(lines[i])
		if t == "" || nixProgress.MatchString(t) {
			continue
		}
		return t
	}
	return ""
}

// DescribeBuildError is a failed build's reason: BuildFailure of the nix
// command's stderr when err carries a failed builder, the error's last line
// otherwise.
func DescribeBuildError(err error) string {
	var nerr *Error
	if errors.As(err, &nerr) {
		if msg, ok := BuildFailure(nerr.Stderr); ok {
			return msg
		}
	}
	s := strings.TrimSpace(err.Error())
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[i+1:])
	}
	return s
}
