package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/cli"
	"github.com/homelab-farm/farm/internal/cli/clitest"
)

// The schemas the NixOS modules are generated from are the ones the
// commands have.
func TestFlagsJSON(t *testing.T) {
	tests := []struct {
		args []string
		file string
	}{
		{[]string{"serve"}, "builder-serve.json"},
		{[]string{"signer"}, "builder-signer.json"},
		{[]string{"cache", "push"}, "builder-cache-push.json"},
		{[]string{"cache", "verify"}, "builder-cache-verify.json"},
		{[]string{"cache", "serve"}, "builder-cache-serve.json"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			clitest.CheckFlagsJSON(t, run, tt.args, "../../nix/services/flags/"+tt.file)
		})
	}
}

// A malformed environment value is a usage error naming the variable,
// never a silent default (BUILDER_WORKERS=two used to give one worker).
func TestEnvErrors(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"serve"}, map[string]string{"BUILDER_WORKERS": "two"}},
		{[]string{"serve"}, map[string]string{"BUILDER_MAX_SILENT_TIME": "30"}},
		{[]string{"serve"}, map[string]string{"BUILDER_EVAL_MEMORY": "4 gigs"}},
		{[]string{"serve"}, map[string]string{"BUILDER_EVAL_MEMORY_MB": "4GiB"}},
		{[]string{"serve"}, map[string]string{"BUILDER_WEBHOOK_BODY_BUDGET": "-1"}},
		{[]string{"serve"}, map[string]string{"BUILDER_LOG_LEVEL": "loud"}},
		{[]string{"signer"}, map[string]string{"BUILDER_SIGNER_ALLOW_UIDS": "root"}},
		{[]string{"signer"}, map[string]string{"BUILDER_SIGNER_MAX_TTL": "1d"}},
		{[]string{"cache", "serve"}, map[string]string{"BUILDER_STALL_TIMEOUT": "soon"}},
	}
	for _, tt := range tests {
		err := run(context.Background(), tt.args, mapEnv(tt.env), io.Discard, io.Discard)
		if !errors.Is(err, cli.ErrUsage) {
			t.Errorf("%v with %v = %v, want a usage error", tt.args, tt.env, err)
			continue
		}
		for k := range tt.env {
			if !strings.Contains(err.Error(), k) {
				t.Errorf("error %q does not name %s", err, k)
			}
		}
	}
}
