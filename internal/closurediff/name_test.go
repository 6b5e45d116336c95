package closurediff_test

import (
	"testing"

	"github.com/homelab-farm/farm/internal/closurediff"
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
