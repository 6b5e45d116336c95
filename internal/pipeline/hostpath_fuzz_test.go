package pipeline

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/hostname"
	"github.com/homelab-farm/farm/internal/nix"
)

// FuzzHostPath feeds arbitrary attribute names through what the evaluation
// makes of them (nix.TargetsFromNames) and the path builders that take a
// host name: no path ever leaves its root, and only valid host names
// become targets.
func FuzzHostPath(f *testing.F) {
	for _, s := range []string{"malphas", "../x", "..", ".", "", "a/b", "a\nb", "a\x00b",
		"../mirrors/repo.git/hooks/reference-transaction", "/etc/passwd", `a\b`, "x/../../y"} {
		f.Add(s)
	}
	root := filepath.Join(f.TempDir(), "gcroots")
	p := &Pipeline{GCRootDir: root}
	f.Fuzz(func(t *testing.T, name string) {
		for _, tg := range nix.TargetsFromNames("nixos", []string{name}) {
			if err := hostname.Validate(tg.Host); err != nil {
				t.Fatalf("attribute %q became target host %q: %v", name, tg.Host, err)
			}
			if (tg.Error == "") != hostname.Valid(name) {
				t.Fatalf("attribute %q: target error %q", name, tg.Error)
			}
			// Both the target's host and the raw name, as a caller that
			// skipped validation would pass it.
			for _, h := range []string{tg.Host, name} {
				got := p.gcRoot(h)
				if got == "" {
					continue
				}
				if filepath.Dir(got) != root || !strings.HasPrefix(got, root+string(filepath.Separator)) {
					t.Fatalf("gc root of %q = %q: outside %s", h, got, root)
				}
			}
		}
	})
}
