package nix

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestBuilderSystems(t *testing.T) {
	machines := filepath.Join(t.TempDir(), "machines")
	if err := os.WriteFile(machines, []byte("# remote builders\nssh-ng://mac aarch64-darwin,x86_64-darwin /key 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		spec string
		want []string
	}{
		{"", nil},
		{"ssh-ng://pi aarch64-linux", []string{"aarch64-linux"}},
		{"ssh://a x86_64-linux,i686-linux - 2; ssh-ng://b aarch64-linux", []string{"x86_64-linux", "i686-linux", "aarch64-linux"}},
		{"@" + machines, []string{"aarch64-darwin", "x86_64-darwin"}},
		{"@/nonexistent/machines", nil},
		{"ssh://c", nil},
	}
	for _, tc := range cases {
		if got := builderSystems(tc.spec); !slices.Equal(got, tc.want) {
			t.Errorf("builderSystems(%q) = %v, want %v", tc.spec, got, tc.want)
		}
	}
}
