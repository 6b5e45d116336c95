package secretfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// MaxSize is the largest secret file read: a token or a key is a few
// hundred bytes, and a larger file is a mistake (a log, a binary).
const MaxSize = 64 << 10

// ErrEmpty is wrapped by the error about a secret file that holds nothing
// but white space.
var ErrEmpty = errors.New("is empty")

// Read returns the secret in the file at path; what names it in errors
// ("poke token").
func Read(path, what string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("no %s file given", what)
	}
	f, err := os.Open(path)
	if err != nil {
		// *fs.PathError: "open NAME: permission denied".
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	if len(b) > MaxSize {
		return "", fmt.Errorf("%s file %s is larger than %d bytes", what, path, MaxSize)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s file %s %w", what, path, ErrEmpty)
	}
	return s, nil
}

// ReadLine is Read for a secret that must be one line (a credential sent
// in a header).
func ReadLine(path, what string) (string, error) {
	s, err := Read(path, what)
	if err != nil {
		return "", err
	}
	if strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("%s file %s holds more than one line", what, path)
	}
	return s, nil
}
