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
