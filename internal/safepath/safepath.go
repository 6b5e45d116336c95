package safepath

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// ErrUnsafe is wrapped by the errors of Join.
var ErrUnsafe = errors.New("unsafe path element")

// Join returns root/elem, or an error wrapping ErrUnsafe when elem is not a
// single plain path element or the result would leave root. root is
// trusted (the builder's configuration); elem is not.
func Join(root, elem string) (string, error) {
	switch {
	case root == "":
		return "", fmt.Errorf("%w: no root directory for %q", ErrUnsafe, elem)
	case elem == "", elem == ".", elem == "..":
		return "", fmt.Errorf("%w: %q", ErrUnsafe, elem)
	case strings.ContainsAny(elem, "/\\\x00"):
		return "", fmt.Errorf("%w: %q contains a separator or NUL", ErrUnsafe, elem)
	}
	root = filepath.Clean(root)
	p := filepath.Join(root, elem)
	if rel, err := filepath.Rel(root, p); err != nil || rel != elem || filepath.Dir(p) != root {
		return "", fmt.Errorf("%w: %q leaves %s", ErrUnsafe, elem, root)
	}
	return p, nil
}
