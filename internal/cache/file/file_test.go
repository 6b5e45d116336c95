package file_test

import (
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
