// Package hostname holds the one rule for host names in Go: a host name is
// one DNS label (RFC 1123): lowercase letters, digits and '-', 1 to 63
// characters, not starting or ending with '-'. The fleet flake applies the
// same rule to nix/hosts/<name>; both are tested against
// testdata/hostnames.json at the repository root.
//
// Host names come from a pushed flake's attribute names and are untrusted
// until Validate accepts them. A valid name is safe as a file name, in a
// commit status context and in an HTTP header.
package hostname

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by the error of Validate.
var ErrInvalid = errors.New("not a valid host name")

// MaxLen is the longest host name (one DNS label).
const MaxLen = 63

// Error is the error of Validate: it names the refused host quoted with Go
// escaping, so that control characters never print raw.
type Error struct{ Name string }

func (e *Error) Error() string { return fmt.Sprintf("host name %q is %v", e.Name, ErrInvalid) }

// Unwrap returns ErrInvalid.
func (e *Error) Unwrap() error { return ErrInvalid }

// Validate returns nil if name is a valid host name, else an *Error.
func Validate(name string) error {
	if !Valid(name) {
		return &Error{Name: name}
	}
	return nil
}

// Valid reports whether name is a valid host name.
func Valid(name string) bool {
	if len(name) == 0 || len(name) > MaxLen || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Placeholder is the name an invalid host name is recorded under: a valid
// host name ("invalid-" and 12 hex digits of the name's SHA-256), the same
// for the same name, so that a failed host can be shown and reported
// without its real name ever becoming a path, a status context or a header.
func Placeholder(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "invalid-" + hex.EncodeToString(sum[:6])
}
