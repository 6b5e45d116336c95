package safepath_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/safepath"
)

func TestJoin(t *testing.T) {
	tests := []struct {
		root, elem string
		want       string // "" means refused
	}{
		{"/var/lib/farm/gcroots", "malphas", "/var/lib/farm/gcroots/malphas"},
		{"/var/lib/farm/gcroots/", "a.b", "/var/lib/farm/gcroots/a.b"},
		{"rel/dir", "x", "rel/dir/x"},
		{"/r", "...", "/r/..."},
		{"/r", "..x", "/r/..x"},
		{"/r", "", ""},
		{"/r", ".", ""},
		{"/r", "..", ""},
		{"/r", "../x", ""},
		{"/r", "../../../tmp/x", ""},
		{"/r", "x/../y", ""},
		{"/r", "a/b", ""},
		{"/r", "/etc", ""},
		{"/r", `a\b`, ""},
		{"/r", "a\x00b", ""},
		{"/r", "../mirrors/repo.git/hooks/reference-transaction", ""},
		{"", "x", ""},
	}
	for _, tt := range tests {
		got, err := safepath.Join(tt.root, tt.elem)
		if tt.want == "" {
			if !errors.Is(err, safepath.ErrUnsafe) {
				t.Errorf("Join(%q, %q) = %q, %v; want ErrUnsafe", tt.root, tt.elem, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Join(%q, %q) = %q, %v; want %q", tt.root, tt.elem, got, err, tt.want)
		}
	}
}

func FuzzJoin(f *testing.F) {
	for _, s := range []string{"x", "..", "../x", "a/b", "a\x00", ".", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, elem string) {
		const root = "/srv/root"
		p, err := safepath.Join(root, elem)
		if err != nil {
			return
		}
		if filepath.Dir(p) != root || !strings.HasPrefix(p, root+"/") || filepath.Base(p) != elem {
			t.Fatalf("Join(%q, %q) = %q: not one element under the root", root, elem, p)
		}
	})
}
