package testenv_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// goListDeps returns every package the package at pattern links, as
// `go list -deps` reports them.
func goListDeps(t *testing.T, pattern string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", pattern)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %v\n%s", pattern, err, stderr)
	}
	return strings.Fields(string(out))
}

// TestDependencies keeps packages out of the programs that must not link
// them, in the spirit of tailscale's depaware: test helpers (package
// testing and what imports it) belong in _test files and *test packages.
func TestDependencies(t *testing.T) {
	tests := []struct {
		program   string
		forbidden []string
	}{
		{"./cmd/builder", []string{"testing"}},
		// The agent verifies manifests with internal/nixkey: it links
		// neither the NAR writer nor its compressors.
		{"./cmd/agent", []string{"testing", "github.com/homelab-farm/farm/internal/cache", "github.com/klauspost/compress/zstd"}},
		{"./cmd/notifier", []string{"testing"}},
	}
	for _, tt := range tests {
		t.Run(strings.TrimPrefix(tt.program, "./cmd/"), func(t *testing.T) {
			t.Parallel()
			deps := goListDeps(t, tt.program)
			if len(deps) < 10 {
				t.Fatalf("go list -deps %s listed only %q", tt.program, deps)
			}
			for _, pkg := range tt.forbidden {
				if slices.Contains(deps, pkg) {
					t.Errorf("%s links %s; find the importer with: go list -deps -f '{{.ImportPath}}: {{.Imports}}' %s | grep -w %s",
						tt.program, pkg, tt.program, pkg)
				}
			}
		})
	}
	// The check sees what it looks for: a test helper package links
	// testing, and the builder (which writes NARs) links zstd.
	t.Run("detects", func(t *testing.T) {
		t.Parallel()
		if !slices.Contains(goListDeps(t, "./internal/queue/queuetest"), "testing") {
			t.Fatal("go list -deps ./internal/queue/queuetest does not list testing; the check above cannot see it either")
		}
		if !slices.Contains(goListDeps(t, "./cmd/builder"), "github.com/klauspost/compress/zstd") {
			t.Fatal("go list -deps ./cmd/builder does not list zstd; the check above cannot see it either")
		}
	})
}
