package main

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/cache"
)

// TestLoadOrCreateKeyModes: a key the builder makes is 0600 even when a
// 0644 temporary is left over from a crash, and a key file (configured or
// made earlier) that its group or others can read stops the start with an
// error naming the file and never its contents.
func TestLoadOrCreateKeyModes(t *testing.T) {
	log := slog.New(slog.DiscardHandler)

	t.Run("leftover temporary", func(t *testing.T) {
		dir := t.TempDir()
		fallback := filepath.Join(dir, "cache-signing.key")
		for _, leftover := range []string{fallback + ".tmp", filepath.Join(dir, ".cache-signing.key.tmp")} {
			if err := os.WriteFile(leftover, []byte("half a key"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(leftover, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		k, err := loadOrCreateKey("", fallback, "farm-cache-1", log)
		if err != nil {
			t.Fatalf("loadOrCreateKey: %v", err)
		}
		fi, err := os.Stat(fallback)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("new key file has mode %04o, want 0600", fi.Mode().Perm())
		}
		again, err := loadOrCreateKey("", fallback, "farm-cache-1", log)
		if err != nil || again.String() != k.String() {
			t.Errorf("second start: key %v, err %v; want the key made first", again.Public(), err)
		}
	})

	for _, tc := range []struct {
		name       string
		mode       os.FileMode
		configured bool
		ok         bool
	}{
		{"configured 0600", 0o600, true, true},
		{"configured 0400", 0o400, true, true},
		{"configured 0640", 0o640, true, false},
		{"configured 0604", 0o604, true, false},
		{"configured 0644", 0o644, true, false},
		{"state dir 0600", 0o600, false, true},
		{"state dir 0644", 0o644, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			k, err := cache.GenerateKey("farm-cache-1")
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, "cache-signing.key")
			if err := os.WriteFile(file, []byte(k.String()+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(file, tc.mode); err != nil {
				t.Fatal(err)
			}
			configured, fallback := file, filepath.Join(dir, "other.key")
			if !tc.configured {
				configured, fallback = "", file
			}
			got, err := loadOrCreateKey(configured, fallback, "farm-cache-1", log)
			if tc.ok {
				if err != nil || got.String() != k.String() {
					t.Fatalf("loadOrCreateKey: %v", err)
				}
				return
			}
			if !errors.Is(err, cache.ErrKeyExposed) {
				t.Fatalf("loadOrCreateKey = %v, want ErrKeyExposed", err)
			}
			secret := strings.SplitN(k.String(), ":", 2)[1]
			if !strings.Contains(err.Error(), file) || strings.Contains(err.Error(), secret) {
				t.Errorf("error %q: want it to name %s and not hold the key", err, file)
			}
			if _, err := os.Stat(fallback); tc.configured && err == nil {
				t.Errorf("a key was made in the state directory although the configured one was refused")
			}
		})
	}
}
