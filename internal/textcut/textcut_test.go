package textcut_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/homelab-farm/farm/internal/textcut"
)

func TestBytes(t *testing.T) {
	tests := []struct {
		s     string
		limit int
		want  string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"a bit too long", 10, "a bit t…"},
		{"linux 6.12.9 → 6.12.10", 17, "linux 6.12.9 …"}, // 14 bytes would end inside the arrow: cut before it
		{"anything", 2, ""},
		{"", 0, ""},
	}
	for _, tt := range tests {
		got := textcut.Bytes(tt.s, tt.limit)
		if got != tt.want {
			t.Errorf("Bytes(%q, %d) = %q, want %q", tt.s, tt.limit, got, tt.want)
		}
		if len(got) > tt.limit || !utf8.ValidString(got) {
			t.Errorf("Bytes(%q, %d) = %q: over the limit or not UTF-8", tt.s, tt.limit, got)
		}
	}
}

func TestLastLine(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int
		want  string
	}{
		{"", 0, ""},
		{"  \n\n", 0, ""},
		{"one", 0, "one"},
		{"one\ntwo\n\n  \n", 0, "two"},
		{"a\r\n  b c  \r\n", 0, "b c"},
		{"x\n" + strings.Repeat("é", 10), 9, "ééé…"},
	} {
		if got := textcut.LastLine(tc.in, tc.limit); got != tc.want {
			t.Errorf("LastLine(%q, %d) = %q, want %q", tc.in, tc.limit, got, tc.want)
		}
	}
}
