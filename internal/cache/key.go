package cache

import (
	"fmt"
	"strings"
)

// maxKeyLen and maxKeyPart bound a key and each of its slash-separated
// parts (255 is the longest file name Linux and S3 tools agree on).
const (
	maxKeyLen  = 1024
	maxKeyPart = 255
)

// CheckKey returns nil if key can name an object: slash-separated parts,
// each 1 to 255 printable ASCII characters other than a backslash, none
// starting with a dot. No object exists under any other key, so the error
// wraps ErrNotFound: a lookup of a bad key from a stranger is a miss, never
// an I/O failure.
func CheckKey(key string) error {
	if key == "" || len(key) > maxKeyLen {
		return fmt.Errorf("invalid key %q: %w", key, ErrNotFound)
	}
	for part := range strings.SplitSeq(key, "/") {
		if part == "" || len(part) > maxKeyPart || part[0] == '.' {
			return fmt.Errorf("invalid key %q: %w", key, ErrNotFound)
		}
		for i := 0; i < len(part); i++ {
			if c := part[i]; c <= ' ' || c >= 0x7f || c == '\\' {
				return fmt.Errorf("invalid key %q: %w", key, ErrNotFound)
			}
		}
	}
	return nil
}
