package closurediff

import (
	"strconv"
	"strings"
)

// Name is what a store path's name says about its package.
type Name struct {
	Package string // "linux", "foo"
	Version string // "6.12.9", "1.0"; empty when the name has none
	Output  string // "man", "dev", "lib64"; empty for the default output
}

// ParseName splits a store path's name ("foo-1.0-man", with or without the
// "/nix/store/<hash>-" prefix) the way Nix groups paths in `nix store
// diff-closures`:
//
//   - a last dash-separated part of lowercase letters only, or "lib32" or
//     "lib64", is the output name ("-man", "-dev", "-bin"); like Nix this
//     cannot tell an output from a version suffix made of letters, so
//     "hello-unstable" is package "hello" with output "unstable";
//   - of the rest, the version starts after the first "-" that is followed
//     by anything but an ASCII letter: "bar-unstable-2024-01-01" is package
//     "bar-unstable" at version "2024-01-01", "python3.12-requests-2.31.0"
//     is package "python3.12-requests" at "2.31.0".
func ParseName(s string) Name {
	s = baseName(s)
	var n Name
	if i := strings.LastIndexByte(s, '-'); i >= 0 && isOutputName(s[i+1:]) {
		s, n.Output = s[:i], s[i+1:]
	}
	n.Package = s
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '-' && !isLetter(s[i+1]) {
			n.Package, n.Version = s[:i], s[i+1:]
			break
		}
	}
	return n
}

// baseName strips "/nix/store/" and the 32-character hash with its dash.
func baseName(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		s = s[i+1:]
		if len(s) > 33 && s[32] == '-' {
			s = s[33:]
		}
	}
	return s
}

func isOutputName(s string) bool {
	if s == "lib32" || s == "lib64" {
		return true
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// CompareVersions orders two versions as Nix does (builtins.compareVersions,
// nix-env -u): -1 when a is older than b, 0 when equal, 1 when newer.
// Versions are split into components at "." and "-" and between digits and
// other characters; numbers compare as numbers, a missing part is older
// than a number, "pre" is older than anything else, a word is older than a
// number ("2.3a" < "2.3.1"), and words compare bytewise.
func CompareVersions(a, b string) int {
	for a != "" || b != "" {
		var ca, cb string
		ca, a = nextComponent(a)
		cb, b = nextComponent(b)
		if componentLess(ca, cb) {
			return -1
		}
		if componentLess(cb, ca) {
			return 1
		}
	}
	return 0
}

func nextComponent(s string) (component, rest string) {
	for s != "" && (s[0] == '.' || s[0] == '-') {
		s = s[1:]
	}
	i := 0
	if s != "" && isDigit(s[0]) {
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	} else {
		for i < len(s) && !isDigit(s[i]) && s[i] != '.' && s[i] != '-' {
			i++
		}
	}
	return s[:i], s[i:]
}

func componentLess(a, b string) bool {
	na, aNum := number(a)
	nb, bNum := number(b)
	switch {
	case aNum && bNum:
		return na < nb
	case a == "" && bNum:
		return true
	case a == "pre" && b != "pre":
		return true
	case b == "pre":
		return false
	case bNum:
		return true
	case aNum:
		return false
	}
	return a < b
}

// number parses a component of digits as Nix does: as a 32-bit int, so
// that a longer run of digits is a word.
func number(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 32)
	return n, err == nil && s != "" && isDigit(s[0])
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
