package nix

import (
	"fmt"
	"testing"
)

func TestParseGenerations(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    string
		wantErr bool
	}{
		{"none", "", "[]", false},
		{"nix 2.8", "   1   2026-11-25 20:03:03   \n   2   2026-11-25 20:03:03   (current)\n", "[{1 false} {2 true}]", false},
		{"unordered", "  10   2026-01-01 00:00:00   (current)\n   9   2026-01-01 00:00:00\n", "[{9 false} {10 true}]", false},
		{"garbage", "error: nope\n", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseGenerations(tt.out)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if s := fmt.Sprint(got); !tt.wantErr && s != tt.want && !(s == "[]" && tt.want == "[]") {
				t.Errorf("got %s, want %s", s, tt.want)
			}
		})
	}
}

func TestStoreRoot(t *testing.T) {
	tests := []struct{ store, want string }{
		{"", ""},
		{"local?root=/tmp/x", "/tmp/x"},
		{"local?store=/nix/store&root=/srv/h1", "/srv/h1"},
		{"daemon", ""},
		{"https://cache.example.org", ""},
	}
	for _, tt := range tests {
		if got := StoreRoot(tt.store); got != tt.want {
			t.Errorf("StoreRoot(%q) = %q, want %q", tt.store, got, tt.want)
		}
	}
}
