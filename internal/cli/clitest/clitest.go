package clitest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/homelab-farm/farm/internal/cli"
)

// UpdateEnv names the variable that makes CheckFlagsJSON rewrite the
// committed files instead of comparing (make flags sets it).
const UpdateEnv = "UPDATE_FLAGS_JSON"

// CheckFlagsJSON runs run with args and -flags-json, in an environment
// where every variable is set to garbage (which the schema must not
// show), and fails unless its output equals the file at path.
func CheckFlagsJSON(t *testing.T, run cli.RunFunc, args []string, path string) {
	t.Helper()
	var stdout bytes.Buffer
	garbage := func(string) string { return "garbage" }
	err := run(context.Background(), append(append([]string(nil), args...), "-flags-json"), garbage, &stdout, io.Discard)
	if !errors.Is(err, cli.ErrDone) {
		t.Fatalf("%v -flags-json = %v, want cli.ErrDone", args, err)
	}
	if os.Getenv(UpdateEnv) != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the committed schema: %v (make flags writes it)", err)
	}
	if !bytes.Equal(stdout.Bytes(), want) {
		t.Errorf("%s is stale: %v -flags-json prints\n%s\nRun make flags and commit the result.", path, args, stdout.String())
	}
}
