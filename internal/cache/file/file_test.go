package file_test

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/cachetest"
	"github.com/homelab-farm/farm/internal/cache/file"
)

func TestContract(t *testing.T) {
	cachetest.TestBackend(t, func(t *testing.T) cache.Backend {
		b, err := file.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// TestInvalidKeys: a key that cannot name an object is a miss
// (cache.ErrNotFound) for every reader, never an I/O error, and is never
// written.
func TestInvalidKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := file.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{
		`nar/a\b`, "log/\x00", "nar/a\x00b", "nar/a\nb", "nar/é", "../x", "nar/../../x", "nar//x", "/nar/x",
		"nar/", ".", "..", "nar/.tmp-1234", "nar/" + strings.Repeat("a", 300), "",
	} {
		if _, err := b.Stat(ctx, key); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("Stat(%q) = %v, want ErrNotFound", key, err)
		}
		if _, err := b.Get(ctx, key); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", key, err)
		}
		if err := b.Put(ctx, key, strings.NewReader("x"), 1); err == nil {
			t.Errorf("Put(%q) succeeded", key)
		}
	}
	var left []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if p != dir {
			left = append(left, p)
		}
		return nil
	})
	if len(left) != 0 {
		t.Errorf("refused Puts left %q", left)
	}
}
