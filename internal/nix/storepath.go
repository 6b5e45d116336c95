package nix

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadStorePath is wrapped by ValidateStorePath's errors.
var ErrBadStorePath = errors.New("not a valid top-level store path")

const (
	// storeHashLen is the length of a store path's hash part: 20 bytes in
	// Nix's base32.
	storeHashLen = 32
	// storeNameMax is the longest name Nix gives a store path.
	storeNameMax = 211
	// nixBase32 is Nix's base32 alphabet (no e, o, u, t).
	nixBase32 = "0123456789abcdfghijklmnpqrsvwxyz"
)

// ValidateStorePath checks that p is a top-level store path as Nix writes
// one: StoreDir, a slash, 32 characters of Nix's base32, a dash and a name
// of 1 to 211 characters from [A-Za-z0-9+._?=-] that does not start with a
// dot; nothing below it. It is the one rule for store paths that come from
// outside (manifests, the builder's API); it does not look at the disk.
func ValidateStorePath(p string) error {
	base, ok := strings.CutPrefix(p, StoreDir+"/")
	if !ok {
		return fmt.Errorf("%q: %w: not under %s", p, ErrBadStorePath, StoreDir)
	}
	if len(base) < storeHashLen+2 || base[storeHashLen] != '-' {
		return fmt.Errorf("%q: %w: want <32-character hash>-<name>", p, ErrBadStorePath)
	}
	for i := range storeHashLen {
		if strings.IndexByte(nixBase32, base[i]) < 0 {
			return fmt.Errorf("%q: %w: hash part is not Nix base32", p, ErrBadStorePath)
		}
	}
	name := base[storeHashLen+1:]
	if len(name) > storeNameMax {
		return fmt.Errorf("%q: %w: name longer than %d characters", p, ErrBadStorePath, storeNameMax)
	}
	if name[0] == '.' {
		return fmt.Errorf("%q: %w: name starts with a dot", p, ErrBadStorePath)
	}
	for i := range len(name) {
		if !storeNameChar(name[i]) {
			return fmt.Errorf("%q: %w: name has the character %q", p, ErrBadStorePath, name[i])
		}
	}
	return nil
}

// storeNameChar reports whether c may appear in a store path's name.
func storeNameChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("+-._?=", c) >= 0
}
