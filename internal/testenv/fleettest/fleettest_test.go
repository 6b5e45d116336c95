package fleettest_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
)

// TestDeployOutput: the example fleet has a farm.deploy output, read by
// the builder's nix.Client.DeploySettings, exactly when a host has a wave.
func TestDeployOutput(t *testing.T) {
	c := &nix.Client{Env: testenv.Nix(t)}
	tests := []struct {
		name  string
		hosts map[string]fleettest.Host
		want  map[string]nix.DeploySettings
	}{
		{
			name: "no waves: no output, every host at once",
			hosts: map[string]fleettest.Host{
				"stolas": {System: "x86_64-linux", Version: "1"},
			},
		},
		{
			name: "waves 0, 1, 1 and a window",
			hosts: map[string]fleettest.Host{
				"stolas": {System: "x86_64-linux", Version: "1", Wave: fleettest.WaveOf(0)},
				"andras": {System: "x86_64-linux", Version: "1", Wave: fleettest.WaveOf(1), Asleep: "skip"},
				"bael":   {System: "x86_64-linux", Version: "1", Wave: fleettest.WaveOf(1), Window: "03:00-05:00", OutsideWindow: "boot"},
			},
			want: map[string]nix.DeploySettings{
				"stolas": {Wave: 0, Window: "always", OutsideWindow: "boot", IdleMinutes: 15, Asleep: "wait"},
				"andras": {Wave: 1, Window: "always", OutsideWindow: "boot", IdleMinutes: 15, Asleep: "skip"},
				"bael":   {Wave: 1, Window: "03:00-05:00", OutsideWindow: "boot", IdleMinutes: 15, Asleep: "wait"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := fleettest.New(t, tt.hosts)
			got, err := c.DeploySettings(context.Background(), "path:"+repo.Dir+"/nix")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DeploySettings = %+v, want %+v", got, tt.want)
			}
		})
	}
}
