package nix

import (
	"regexp"
	"strings"
)

// RemoteFailure is a remote build machine that Nix could not use for a
// build, as its build output reports it.
type RemoteFailure struct {
	Machine string // the store URI, as Nix names it
	Reason  string // short: "connection refused", "permission denied (publickey)"
}

var (
	cannotBuildOn = regexp.MustCompile(`cannot build on '([^']+)': (.*)$`)
	sshConnect    = regexp.MustCompile(`^ssh: connect to host \S+ port \d+: (.+)$`)
	sshOther      = regexp.MustCompile(`^(ssh: .+|.*Permission denied.*|Host key verification failed\.?|Connection (closed|reset) by .+|kex_exchange_identification: .+)$`)
)

// RemoteFailures returns the remote build machines Nix's output (a build
// log or the stderr of nix-store --realise / nix build) says it could not
// use, each with a short reason: SSH's own message when there is one (it
// says more than Nix's "unexpected end-of-file"), else Nix's innermost
// error. A machine that failed several times is reported once, with its
// last reason.
func RemoteFailures(output string) []RemoteFailure {
	var out []RemoteFailure
	seen := map[string]int{}
	lines := strings.Split(output, "\n")
	from := 0
	for i, line := range lines {
		line = strings.TrimSpace(line)
		m := cannotBuildOn.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		reason := ""
		for _, prev := range lines[from:i] {
			prev = strings.TrimSpace(prev)
			if c := sshConnect.FindStringSubmatch(prev); c != nil {
				reason = c[1]
			} else if sshOther.MatchString(prev) {
				reason = strings.TrimPrefix(prev, "ssh: ")
			}
		}
		if reason == "" {
			reason = m[2]
			if j := strings.LastIndex(reason, "error: "); j >= 0 {
				reason = reason[j+len("error: "):]
			}
		}
		from = i + 1
		if reason = strings.TrimSpace(reason); reason == "" {
			reason = "unknown error"
		}
		f := RemoteFailure{Machine: m[1], Reason: strings.ToLower(reason[:1]) + strings.TrimSuffix(reason[1:], ".")}
		if k, ok := seen[f.Machine]; ok {
			out[k] = f
			continue
		}
		seen[f.Machine] = len(out)
		out = append(out, f)
	}
	return out
}

// RemoteBuildReason turns the output of a build that Nix could not start
// on any machine into a short reason naming each machine and what went
// wrong ("no machine could build it: ssh-ng://root@b: connection refused").
// It returns "" when the output shows no such failure (the build ran, or
// failed for another reason).
func RemoteBuildReason(output string) string {
	if !strings.Contains(output, "Failed to find a machine for remote build") &&
		!strings.Contains(output, "unable to start any build") {
		return ""
	}
	failures := RemoteFailures(output)
	if len(failures) == 0 {
		if m := requiredLine.FindStringSubmatch(output); m != nil {
			if m[2] != "" {
				return "no remote machine builds " + m[1] + " with features " + m[2]
			}
			return "no remote machine builds " + m[1]
		}
		return "no machine could build it (max-jobs is 0 and no remote builder fits)"
	}
	parts := make([]string, len(failures))
	for i, f := range failures {
		parts[i] = f.Machine + ": " + f.Reason
	}
	return "no machine could build it: " + strings.Join(parts, "; ")
}

var requiredLine = regexp.MustCompile(`required \(system, features\): \(([^,]+), ?([^)]*)\)`)
