// Package envflag is what the farm's commands share on their command line:
// the environment fallback of every flag (read through an injected getenv,
// so tests never touch the process environment) and secrets read from
// files, whose errors name the file and never its contents.
package envflag

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// String returns getenv(key), or def when it is empty.
func String(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// Int returns getenv(key) as an integer, or def when it is empty or not one.
func Int(getenv func(string) string, key string, def int) int {
	if n, err := strconv.Atoi(getenv(key)); err == nil {
		return n
	}
	return def
}

// Duration returns getenv(key) as a duration ("90s"), or def when it is
// empty or not one.
func Duration(getenv func(string) string, key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(getenv(key)); err == nil {
		return d
	}
	return def
}

// Bool returns getenv(key) as a boolean, or def when it is empty or not one.
func Bool(getenv func(string) string, key string, def bool) bool {
	if b, err := strconv.ParseBool(getenv(key)); err == nil {
		return b
	}
	return def
}

// ReadSecret reads a secret from the file at path; what names it in errors
// ("poke token"). Surrounding white space is dropped; an empty file is an
// error.
func ReadSecret(path, what string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("no %s file given", what)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s file %s is empty", what, path)
	}
	return s, nil
}

// Multi is a repeatable string flag.
type Multi []string

func (m *Multi) String() string     { return strings.Join(*m, "; ") }
func (m *Multi) Set(v string) error { *m = append(*m, v); return nil }
