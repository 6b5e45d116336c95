package closurediff_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/closurediff"
	"github.com/homelab-farm/farm/internal/testenv"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		in   string
		want closurediff.Name
	}{
		{"linux-6.12.9", closurediff.Name{Package: "linux", Version: "6.12.9"}},
		{"/nix/store/0123456789abcdfghijklmnpqrsvwxyz-linux-6.12.9", closurediff.Name{Package: "linux", Version: "6.12.9"}},
		{"foo-1.0-man", closurediff.Name{Package: "foo", Version: "1.0", Output: "man"}},
		{"foo-1.0-lib64", closurediff.Name{Package: "foo", Version: "1.0", Output: "lib64"}},
		{"foo-1.0-lib32", closurediff.Name{Package: "foo", Version: "1.0", Output: "lib32"}},
		// lib16 is neither letters only nor lib32/lib64: part of the version.
		{"foo-1.0-lib16", closurediff.Name{Package: "foo", Version: "1.0-lib16"}},
		{"bar-unstable-2024-01-01", closurediff.Name{Package: "bar-unstable", Version: "2024-01-01"}},
		{"python3.12-requests-2.31.0", closurediff.Name{Package: "python3.12-requests", Version: "2.31.0"}},
		{"python3.12-requests-2.31.0-dist", closurediff.Name{Package: "python3.12-requests", Version: "2.31.0", Output: "dist"}},
		{"etc", closurediff.Name{Package: "etc"}},
		// A letters-only last part is taken for an output, as Nix does.
		{"unit-script", closurediff.Name{Package: "unit", Output: "script"}},
		{"hello-unstable", closurediff.Name{Package: "hello", Output: "unstable"}},
		{"system-units", closurediff.Name{Package: "system", Output: "units"}},
		// Capitals are not an output name, and not a version either.
		{"foo-Bar", closurediff.Name{Package: "foo-Bar"}},
		// The version starts at the first dash followed by a non-letter.
		{"foo-_bar", closurediff.Name{Package: "foo", Version: "_bar"}},
		{"foo--1", closurediff.Name{Package: "foo", Version: "-1"}},
		{"nixos-system-stolas-24.11.20250101.abcdef0", closurediff.Name{Package: "nixos-system-stolas", Version: "24.11.20250101.abcdef0"}},
		{"linux-6.12.9-modules-shrunk", closurediff.Name{Package: "linux", Version: "6.12.9-modules", Output: "shrunk"}},
		{"foo-", closurediff.Name{Package: "foo-"}},
		{"-man", closurediff.Name{Package: "", Output: "man"}},
		{"x", closurediff.Name{Package: "x"}},
		{"", closurediff.Name{}},
		{"source", closurediff.Name{Package: "source"}},
		{"firefox-133.0-1", closurediff.Name{Package: "firefox", Version: "133.0-1"}},
		{"perl5.40.0-JSON-4.10", closurediff.Name{Package: "perl5.40.0-JSON", Version: "4.10"}},
		{"go-1.23.4-bin", closurediff.Name{Package: "go", Version: "1.23.4", Output: "bin"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := closurediff.ParseName(tt.in); got != tt.want {
				t.Errorf("ParseName(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// versionPairs are compared by CompareVersions and by Nix's own
// builtins.compareVersions.
var versionPairs = [][2]string{
	{"1.0", "1.0"}, {"1.0", "1.1"}, {"6.12.9", "6.12.10"}, {"2.3a", "2.3.1"}, {"2.3a", "2.3"},
	{"1.0pre1", "1.0"}, {"1.0pre", "1.0"}, {"1.0-pre", "1.0"}, {"pre", "pre"}, {"1.0rc1", "1.0"},
	{"1.0", "1.0.0"}, {"1.0-1", "1.0.1"}, {"1.0a", "1.0b"}, {"2024-01-01", "2024-02-01"},
	{"unstable-2024-01-01", "2024.01.01"}, {"", "1"}, {"", ""}, {"a", ""}, {"01", "1"},
	{"1..2", "1.2"}, {"1_2", "1.2"}, {"99999999999", "1"}, {"99999999999", "99999999998"},
	{"2147483647", "2147483648"}, {"133.0", "134.0"}, {"1.0-man", "1.0"}, {"3.11", "3.13"},
	{"1.2.3", "1.2.3alpha"}, {"alpha", "beta"}, {"0.1.0+git", "0.1.0"}, {"1.0.", "1.0"},
}

func TestCompareVersions(t *testing.T) {
	for _, p := range versionPairs {
		got, back := closurediff.CompareVersions(p[0], p[1]), closurediff.CompareVersions(p[1], p[0])
		if got != -back {
			t.Errorf("CompareVersions(%q, %q) = %d but reversed %d", p[0], p[1], got, back)
		}
	}
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"6.12.9", "6.12.10", -1}, {"2.3a", "2.3.1", -1}, {"1.0pre1", "1.0", -1}, {"1.0", "1.0", 0}, {"134.0", "133.0", 1},
	} {
		if got := closurediff.CompareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestCompareVersionsLikeNix: every pair orders as builtins.compareVersions
// orders it.
func TestCompareVersionsLikeNix(t *testing.T) {
	env := testenv.Nix(t)
	var expr strings.Builder
	expr.WriteString("[")
	for _, p := range versionPairs {
		fmt.Fprintf(&expr, " (builtins.compareVersions %q %q)", p[0], p[1])
	}
	expr.WriteString(" ]")
	cmd := exec.Command("nix-instantiate", "--eval", "--strict", "--json", "--expr", expr.String())
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix-instantiate: %v\n%s", err, stderrOf(err))
	}
	var want []int
	if err := json.Unmarshal(out, &want); err != nil || len(want) != len(versionPairs) {
		t.Fatalf("nix printed %s (%v)", out, err)
	}
	for i, p := range versionPairs {
		if got := closurediff.CompareVersions(p[0], p[1]); got != want[i] {
			t.Errorf("CompareVersions(%q, %q) = %d, builtins.compareVersions says %d", p[0], p[1], got, want[i])
		}
	}
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}
