package nix_test

import (
	"context"
	"slices"
	"testing"

	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv"
)

// TestCapacity reads the real Nix's configuration: its own system and
// extra-platforms unless max-jobs is 0, and the machines of --builders (or
// of its builders setting), which decide the lanes.
func TestCapacity(t *testing.T) {
	const spec = "ssh-ng://a aarch64-darwin - 3; ssh-ng://b x86_64-linux - 2"
	for _, tc := range []struct {
		name      string
		config    string
		builders  string
		wantLocal bool
		machines  int
	}{
		{"local", "", "", true, 0},
		{"local and --builders", "", spec, true, 2},
		{"max-jobs 0, builders setting", "max-jobs = 0\nbuilders = " + spec + "\n", "", false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := append(testenv.Nix(t), "NIX_CONFIG="+testenv.NixConfig+"builders =\n"+tc.config)
			capa, err := (&nix.Client{Env: env}).Capacity(context.Background(), tc.builders)
			if err != nil {
				t.Fatal(err)
			}
			if got := capa.Local("x86_64-linux"); got != tc.wantLocal {
				t.Errorf("Local(x86_64-linux) = %v, want %v (local systems %v)", got, tc.wantLocal, capa.LocalSystems)
			}
			if tc.wantLocal && !capa.Local("aarch64-linux") {
				t.Errorf("local systems %v lack the extra platform aarch64-linux", capa.LocalSystems)
			}
			if len(capa.Machines) != tc.machines {
				t.Fatalf("machines = %+v, want %d", capa.Machines, tc.machines)
			}
			if tc.machines > 0 {
				if !capa.Builds("aarch64-darwin") || capa.RemoteJobs("aarch64-darwin") != 3 || capa.RemoteJobs("x86_64-linux") != 2 {
					t.Errorf("darwin builds %v with %d jobs, x86_64 remote jobs %d; want true, 3, 2",
						capa.Builds("aarch64-darwin"), capa.RemoteJobs("aarch64-darwin"), capa.RemoteJobs("x86_64-linux"))
				}
				if !slices.Contains(capa.Systems(), "aarch64-darwin") {
					t.Errorf("Systems() = %v, want aarch64-darwin in it", capa.Systems())
				}
			} else if capa.Builds("aarch64-darwin") {
				t.Error("without machines aarch64-darwin is buildable")
			}
		})
	}
}
