package nix_test

import (
	"reflect"
	"testing"

	"github.com/homelab-farm/farm/internal/nix"
)

// Outputs as Nix 2.8 prints them (captured from TestRemoteBuilderDown).
const (
	refusedOutput = `ssh: connect to host 10.233.7.2 port 22: Connection refused
cannot build on 'ssh-ng://root@10.233.7.2': error: cannot open connection to remote store 'ssh-ng://root@10.233.7.2': error: unexpected end-of-file
Failed to find a machine for remote build!
derivation: f8ysqxcc84sq9kgk6232g21bn3h06k6n-remote-proof.drv
required (system, features): (x86_64-linux, )
1 available machines:
(systems, maxjobs, supportedFeatures, mandatoryFeatures)
(x86_64-linux, 1, , )
error: unable to start any build; remote machines may not have all required system features.
`
	twoDownOutput = `ssh: connect to host 10.233.7.2 port 22: No route to host
cannot build on 'ssh-ng://root@10.233.7.2': error: cannot open connection to remote store 'ssh-ng://root@10.233.7.2': error: unexpected end-of-file
root@10.233.8.2: Permission denied (publickey).
cannot build on 'ssh-ng://root@10.233.8.2': error: cannot open connection to remote store 'ssh-ng://root@10.233.8.2': error: unexpected end-of-file
error: unable to start any build; remote machines may not have all required system features.
`
	fellBackOutput = `ssh: connect to host 10.233.7.2 port 22: Connection refused
cannot build on 'ssh-ng://root@10.233.7.2': error: cannot open connection to remote store 'ssh-ng://root@10.233.7.2': error: unexpected end-of-file
building '/nix/store/37qkrcydfkmw257jv1hp316dmk05wrik-remote-proof.drv' on 'ssh-ng://root@10.233.8.2'...
`
	noMachineOutput = `Failed to find a machine for remote build!
derivation: 1q9y3pwf0vr5rfc0c8x9ndwv0l4hhqb2-x.drv
required (system, features): (aarch64-darwin, [big-parallel])
error: unable to start any build; remote machines may not have all required system features.
`
	noSSHLineOutput = `cannot build on 'ssh://mac': error: cannot connect to 'mac': error: protocol mismatch
error: unable to start any build; remote machines may not have all required system features.
`
)

func TestRemoteFailures(t *testing.T) {
	cases := []struct {
		name       string
		output     string
		want       []nix.RemoteFailure
		wantReason string
	}{
		{"connection refused", refusedOutput,
			[]nix.RemoteFailure{{"ssh-ng://root@10.233.7.2", "connection refused"}},
			"no machine could build it: ssh-ng://root@10.233.7.2: connection refused"},
		{"two machines down", twoDownOutput,
			[]nix.RemoteFailure{{"ssh-ng://root@10.233.7.2", "no route to host"}, {"ssh-ng://root@10.233.8.2", "root@10.233.8.2: Permission denied (publickey)"}},
			"no machine could build it: ssh-ng://root@10.233.7.2: no route to host; ssh-ng://root@10.233.8.2: root@10.233.8.2: Permission denied (publickey)"},
		{"fell back to another machine", fellBackOutput,
			[]nix.RemoteFailure{{"ssh-ng://root@10.233.7.2", "connection refused"}}, ""},
		{"no machine for the system", noMachineOutput, nil, "no remote machine builds aarch64-darwin with features [big-parallel]"},
		{"nix's own error when ssh says nothing", noSSHLineOutput,
			[]nix.RemoteFailure{{"ssh://mac", "protocol mismatch"}},
			"no machine could build it: ssh://mac: protocol mismatch"},
		{"an ordinary build failure", "error: builder for '/nix/store/x.drv' failed with exit code 1\n", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := nix.RemoteFailures(tc.output); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("RemoteFailures = %+v, want %+v", got, tc.want)
			}
			if got := nix.RemoteBuildReason(tc.output); got != tc.wantReason {
				t.Errorf("RemoteBuildReason = %q, want %q", got, tc.wantReason)
			}
		})
	}
}
