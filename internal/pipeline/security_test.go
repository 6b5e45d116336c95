package pipeline_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/hostname"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
)

// hookFlake is a fleet flake with one good host and one whose attribute
// name climbs from the gc roots directory into the mirror's hooks and whose
// closure is a hook script that appends to mark.
const hookFlake = `{
  outputs = { self }:
    let
      drv = name: script: { config.system.build.toplevel = derivation {
        inherit name;
        system = "x86_64-linux";
        builder = "/bin/sh";
        args = [ "-c" script ];
      }; };
    in {
      nixosConfigurations = {
        good = drv "good" "echo good > $out";
        %q = drv "hook" "printf '#!/bin/sh\\necho hook ran >> %s\\n' > $out; /bin/chmod +x $out";
      };
    };
}
`

// TestBranchPushCannotPlantHook is the attack of a branch push: a host
// named "../mirror/hooks/reference-transaction" used to become a gc root
// symlink inside the mirror's hooks, run by git on the next fetch.
func TestBranchPushCannotPlantHook(t *testing.T) {
	f := newFarm(t, map[string]fleettest.Host{"good": {System: "x86_64-linux", Version: "1"}})
	mirror := f.p.Mirrors("homelab").Dir
	f.p.GCRootDir = filepath.Join(filepath.Dir(mirror), "gcroots")
	evil := "../" + filepath.Base(mirror) + "/hooks/reference-transaction"
	mark := filepath.Join(t.TempDir(), "hook-ran")

	c1 := f.repo.CommitFile(t, "nix/flake.nix", fmt.Sprintf(hookFlake, evil, mark), "evil host")
	f.push(t, c1)
	f.runAll(t)
	got := f.targets(t)
	if got["good"].State != state.TargetBuilt {
		t.Errorf("good: %s (%s), want built", got["good"].State, got["good"].Reason)
	}
	bad := got[hostname.Placeholder(evil)]
	wantReason := `host name "` + evil + `" is not a valid host name`
	if bad.State != state.TargetFailed || !strings.Contains(bad.Reason, wantReason) {
		t.Errorf("evil host: %+v; want failed with %q", bad, wantReason)
	}
	if s := f.forge.status(c1, "farm/host/"+hostname.Placeholder(evil)); s.State != forge.StateFailure {
		t.Errorf("status of the evil host = %+v, want failure", s)
	}
	for host := range got {
		if err := hostname.Validate(host); err != nil {
			t.Errorf("a target is recorded under %v", err)
		}
	}
	if _, err := os.Lstat(filepath.Join(mirror, "hooks", "reference-transaction")); err == nil {
		t.Fatalf("a build planted a hook in the mirror")
	}
	entries, _ := os.ReadDir(f.p.GCRootDir)
	if len(entries) != 1 || entries[0].Name() != "good" {
		t.Errorf("gc roots = %v, want just good", entries)
	}

	// The next legitimate push fetches into the mirror: no hook runs.
	c2 := f.repo.CommitFile(t, "README.md", "next\n", "next")
	f.push(t, c2)
	f.runAll(t)
	if b, err := os.ReadFile(mark); err == nil {
		t.Fatalf("a hook ran as the builder: %s", b)
	}
}
