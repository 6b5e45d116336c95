package nix_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/hostname"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv"
)

// badNamesFlake has two good hosts and hosts whose attribute names are not
// host names: a path that climbs out of a directory and one with a newline.
const badNamesFlake = `{
  outputs = { self }:
    let
      host = name: {
        config.system.build.toplevel = derivation {
          inherit name;
          system = "x86_64-linux";
          builder = "/bin/sh";
          args = [ "-c" "echo > $out" ];
        };
      };
    in {
      nixosConfigurations = {
        good = host "good";
        "../x" = host "dotdot";
        "a\nb" = host "newline";
      };
      darwinConfigurations."../mirrors/repo.git/hooks/reference-transaction" = host "hook";
      darwinConfigurations.mac = host "mac";
    };
}
`

func TestEvalRefusesInvalidHostNames(t *testing.T) {
	c := &nix.Client{Env: testenv.Nix(t)}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "flake.nix"), []byte(badNamesFlake), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "."},
		{"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "bad names"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	targets, err := c.Eval(context.Background(), "git+file://"+dir, nix.EvalOptions{Jobs: 2})
	if err != nil {
		t.Fatalf("Eval: %v", err)
	}
	got := map[string]nix.Target{}
	for _, tg := range targets {
		if err := hostname.Validate(tg.Host); err != nil {
			t.Errorf("target %+v: %v; every target's Host must be a valid host name", tg, err)
		}
		got[tg.Host] = tg
	}
	if len(got) != 5 {
		t.Fatalf("targets %+v, want 5", targets)
	}
	for _, h := range []string{"good", "mac"} {
		if tg := got[h]; tg.Error != "" || !strings.HasSuffix(tg.DrvPath, ".drv") {
			t.Errorf("%s = %+v, want evaluated", h, tg)
		}
	}
	for name, kind := range map[string]string{"../x": "nixos", "a\nb": "nixos", "../mirrors/repo.git/hooks/reference-transaction": "darwin"} {
		tg := got[hostname.Placeholder(name)]
		want := (&hostname.Error{Name: name}).Error()
		if tg.Error != want || tg.Kind != kind || tg.DrvPath != "" || tg.OutPath != "" {
			t.Errorf("host %q = %+v, want a failed %s target with error %q", name, tg, kind, want)
		}
	}
	if _, err := c.EvalHost(context.Background(), "git+file://"+dir, "../x", "nixos", nix.EvalOptions{}); err == nil {
		t.Errorf("EvalHost of %q evaluated it", "../x")
	}
}
