package nix_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv"
)

// TestDeploySettings reads farm.deploy with the real nix from flakes
// written to a temporary directory (no inputs, so no network).
func TestDeploySettings(t *testing.T) {
	c := &nix.Client{Env: testenv.Nix(t)}
	tests := []struct {
		name    string
		outputs string
		want    map[string]nix.DeploySettings
		wantErr error
	}{
		{
			name: "waves and windows",
			outputs: `{ farm.deploy = {
				stolas = { wave = 0; window = "always"; outsideWindow = "boot"; idleMinutes = 15; asleep = "wait"; };
				malphas = { wave = 2; window = "03:00-05:00"; outsideWindow = "wait"; idleMinutes = 30; asleep = "skip"; };
			}; }`,
			want: map[string]nix.DeploySettings{
				"stolas":  {Wave: 0, Window: "always", OutsideWindow: "boot", IdleMinutes: 15, Asleep: "wait"},
				"malphas": {Wave: 2, Window: "03:00-05:00", OutsideWindow: "wait", IdleMinutes: 30, Asleep: "skip"},
			},
		},
		{name: "no farm.deploy: every host in one wave", outputs: `{ nixosConfigurations = { }; }`},
		{name: "a host name that is not one", outputs: `{ farm.deploy = { "../etc" = { wave = 0; }; }; }`, wantErr: nix.ErrDeploySettings},
		{name: "a negative wave", outputs: `{ farm.deploy = { stolas = { wave = -1; }; }; }`, wantErr: nix.ErrDeploySettings},
		{name: "an unknown asleep policy", outputs: `{ farm.deploy = { stolas = { wave = 0; asleep = "snooze"; }; }; }`, wantErr: nix.ErrDeploySettings},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			flake := "{ outputs = _: " + tt.outputs + "; }\n"
			if err := os.WriteFile(filepath.Join(dir, "flake.nix"), []byte(flake), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := c.DeploySettings(context.Background(), "path:"+dir)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("DeploySettings = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DeploySettings = %+v, want %+v", got, tt.want)
			}
		})
	}
}
