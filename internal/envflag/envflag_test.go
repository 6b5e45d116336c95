package envflag_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/envflag"
)

func TestFallbacks(t *testing.T) {
	env := map[string]string{"S": "x", "I": "7", "BADI": "seven", "D": "90s", "B": "true"}
	getenv := func(k string) string { return env[k] }
	if got := envflag.String(getenv, "S", "d"); got != "x" {
		t.Errorf("String = %q, want x", got)
	}
	if got := envflag.String(getenv, "NONE", "d"); got != "d" {
		t.Errorf("String(unset) = %q, want d", got)
	}
	if got := envflag.Int(getenv, "I", 1); got != 7 {
		t.Errorf("Int = %d, want 7", got)
	}
	if got := envflag.Int(getenv, "BADI", 1); got != 1 {
		t.Errorf("Int(bad) = %d, want the default 1", got)
	}
	if got := envflag.Duration(getenv, "D", time.Second); got != 90*time.Second {
		t.Errorf("Duration = %v, want 90s", got)
	}
	if got := envflag.Bool(getenv, "B", false); !got {
		t.Errorf("Bool = false, want true")
	}
	var m envflag.Multi
	_ = m.Set("a")
	_ = m.Set("b")
	if m.String() != "a; b" {
		t.Errorf("Multi = %q", m.String())
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(good, []byte("  s3cret\n"), 0o600)
	_ = os.WriteFile(empty, []byte("\n"), 0o600)
	if s, err := envflag.ReadSecret(good, "token"); err != nil || s != "s3cret" {
		t.Errorf("ReadSecret = %q, %v", s, err)
	}
	if _, err := envflag.ReadSecret(filepath.Join(dir, "missing"), "token"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
	if _, err := envflag.ReadSecret(empty, "token"); err == nil || !strings.Contains(err.Error(), empty) {
		t.Errorf("empty file: %v, want an error naming it", err)
	}
	if _, err := envflag.ReadSecret("", "poke token"); err == nil || !strings.Contains(err.Error(), "poke token") {
		t.Errorf("no file: %v", err)
	}
}
