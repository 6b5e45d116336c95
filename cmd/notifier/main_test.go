package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/cli/clitest"
)

func TestFlagErrors(t *testing.T) {
	dir := t.TempDir()
	badConfig := filepath.Join(dir, "bad.toml")
	_ = os.WriteFile(badConfig, []byte("[wake_on_lan]\nx = \"nope\"\n"), 0o600)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no builder", nil, "--builder-url"},
		{"topic without server", []string{"--builder-url", "http://b", "--ntfy-topic", "t"}, "go together"},
		{"missing token file", []string{"--builder-url", "http://b", "--ntfy-url", "http://n", "--ntfy-topic", "t", "--ntfy-token-file", dir + "/nope"}, "read ntfy token"},
		{"bad config", []string{"--builder-url", "http://b", "--config", badConfig}, "MAC"},
		{"stray argument", []string{"--builder-url", "http://b", "x"}, "unexpected arguments"},
		{"a relative second builder", []string{"--builder-url", "http://b1,b2"}, "--builder-url"},
		{"one builder twice", []string{"--builder-url", "http://b1", "--builder-url", "http://b1/"}, "given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), append([]string{"--state-dir", dir}, tt.args...), func(string) string { return "" }, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// The schema the NixOS module is generated from is the one the program has.
func TestFlagsJSON(t *testing.T) {
	clitest.CheckFlagsJSON(t, run, nil, "../../nix/services/flags/notifier.json")
}
