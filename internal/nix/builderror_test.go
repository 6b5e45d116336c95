package nix_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv"
)

func TestBuildFailure(t *testing.T) {
	const drv = "/nix/store/xgwsaw1j9k1vqbw0zrvjh5zzprpashrc-nixos-system-stolas.drv"
	for _, tc := range []struct {
		name, in, want string
		ok             bool
	}{
		{"nix-store quotes the tail", "building '" + drv + "'...\nerror: builder for '" + drv + "' failed with exit code 1;\n       last 2 log lines:\n       > step one\n       > build of stolas fails on purpose\n       For full logs, run 'nix log " + drv + "'.\n",
			"builder for nixos-system-stolas failed with exit code 1: build of stolas fails on purpose", true},
		{"nix build streams the log", "this derivation will be built:\n  " + drv + "\nbuilding '" + drv + "'...\nstep one\nbuild of stolas fails on purpose\nerror: builder for '" + drv + "' failed with exit code 2\n",
			"builder for nixos-system-stolas failed with exit code 2: build of stolas fails on purpose", true},
		{"no log", "building '" + drv + "'...\nerror: builder for '" + drv + "' failed with signal 9\n",
			"builder for nixos-system-stolas failed with signal 9", true},
		{"colours", "\x1b[31;1merror:\x1b[0m builder for '\x1b[35;1m" + drv + "\x1b[0m' failed with exit code 1;\n       last 1 log lines:\n       > oops\n",
			"builder for nixos-system-stolas failed with exit code 1: oops", true},
		{"not a build failure", "error: cannot connect to 'ssh-ng://pi': Connection refused\n", "", false},
		{"empty", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := nix.BuildFailure(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Errorf("BuildFailure = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	if got := nix.DescribeBuildError(errors.New("build x: context deadline exceeded\n")); got != "build x: context deadline exceeded" {
		t.Errorf("DescribeBuildError(plain) = %q", got)
	}
}

// TestBuildFailureRealNix: what the real nix-store --realise prints for a
// failing build gives the derivation's name and the log's last line.
func TestBuildFailureRealNix(t *testing.T) {
	env := testenv.Nix(t)
	dir := t.TempDir()
	expr := filepath.Join(dir, "fail.nix")
	body := `derivation { name = "nixos-system-stolas"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "echo step one; echo build of stolas fails on purpose >&2; exit 3" ]; salt = "` + dir + `"; }`
	if err := os.WriteFile(expr, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nix-instantiate", expr)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix-instantiate: %v", err)
	}
	c := &nix.Client{Env: env}
	_, err = c.Realise(context.Background(), strings.TrimSpace(string(out)), nix.BuildOptions{})
	if err == nil {
		t.Fatal("build succeeded")
	}
	want := "builder for nixos-system-stolas failed with exit code 3: build of stolas fails on purpose"
	if got := nix.DescribeBuildError(err); got != want {
		t.Errorf("DescribeBuildError = %q, want %q (error: %v)", got, want, err)
	}
}
