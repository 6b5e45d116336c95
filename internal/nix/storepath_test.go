package nix

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateStorePath(t *testing.T) {
	const hash = "0123456789abcdfghijklmnpqrsvwxyz"
	tests := []struct {
		path string
		ok   bool
	}{
		{"/nix/store/" + hash + "-nixos-system-malphas-25.05", true},
		{"/nix/store/" + hash + "-a", true},
		{"/nix/store/" + hash + "-A+b_c?d=e.f-g", true},
		{"/nix/store/" + hash + "-" + strings.Repeat("n", 211), true},
		{"/nix/store/" + hash + "-x.", true},
		{"/nix/store/..", false},
		{"/nix/store/", false},
		{"/nix/store", false},
		{"/nix/store/-rf /", false},
		{"/nix/store/" + hash + "-", false},
		{"/nix/store/" + hash + "x", false},
		{"/nix/store/" + hash + "-" + strings.Repeat("n", 212), false},
		{"/nix/store/" + hash + "-.hidden", false},
		{"/nix/store/" + hash + "-..", false},
		{"/nix/store/" + hash + "-a/bin", false},
		{"/nix/store/" + hash + "-a b", false},
		{"/nix/store/" + hash + "-a\n", false},
		{"/nix/store/" + hash + "-a\x00", false},
		{"/nix/store/" + hash + "-ü", false},
		{"/nix/store/0123456789abcdefghijklmnpqrsvwxy-a", false}, // 'e' is not Nix base32
		{"/nix/store/0123456789ABCDFGHIJKLMNPQRSVWXYZ-a", false},
		{"/nix/store/" + hash[:31] + "-a", false},
		{"/nix/store/" + hash + "0-a", false},
		{"/nix/storex/" + hash + "-a", false},
		{"/tmp/" + hash + "-a", false},
		{"nix/store/" + hash + "-a", false},
		{"/nix/store/../store/" + hash + "-a", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			err := ValidateStorePath(tt.path)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidateStorePath(%q) = %v, want ok %v", tt.path, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadStorePath) {
				t.Errorf("error %v does not wrap ErrBadStorePath", err)
			}
		})
	}
}

// FuzzValidateStorePath: whatever passes is a single path component under
// the store, its hash part is Nix base32 and its name cannot climb out.
func FuzzValidateStorePath(f *testing.F) {
	f.Add("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-x")
	f.Add("/nix/store/..")
	f.Add("/nix/store/-rf /")
	f.Fuzz(func(t *testing.T, p string) {
		if ValidateStorePath(p) != nil {
			return
		}
		base := strings.TrimPrefix(p, StoreDir+"/")
		if base == p || strings.ContainsAny(base, "/\x00 \n") || strings.HasPrefix(base[33:], ".") || len(base) > 32+1+211 {
			t.Fatalf("accepted %q", p)
		}
		if sp, err := StorePath(p); err != nil || sp != p {
			t.Fatalf("StorePath(%q) = %q, %v; want it back", p, sp, err)
		}
	})
}
