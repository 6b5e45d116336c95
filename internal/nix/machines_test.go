package nix_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/nix"
)

// hostKey is a base64 SSH host public key line, as nix.buildMachines'
// publicHostKey holds it.
const hostKey = "c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUVuV1ZSQlJ1V0xMd3dJM1ZqZkhkaVNqd2JmbDFKb3BOd2RvZlJEeHZpcmQgcm9vdEBidWlsZGVyCg=="

func TestParseMachines(t *testing.T) {
	dir := t.TempDir()
	machinesFile := filepath.Join(dir, "machines")
	if err := os.WriteFile(machinesFile, []byte("# written by NixOS\nssh-ng://nix@mac aarch64-darwin,x86_64-darwin /etc/nix/mac-key 4 2 big-parallel - "+hostKey+"\n\nbeastie x86_64-freebsd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badFile := filepath.Join(dir, "bad")
	if err := os.WriteFile(badFile, []byte("ssh://ok x86_64-linux\nssh://pi aarch64-linux - many\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	loop := filepath.Join(dir, "loop")
	if err := os.WriteFile(loop, []byte("@"+loop+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		spec    string
		want    []nix.Machine
		wantErr string // the error names the place and text of the bad entry
	}{
		{name: "empty", spec: "", want: nil},
		{name: "only comments and blanks", spec: " ; # none\n\n", want: nil},
		{
			name: "uri only: Nix's defaults",
			spec: "ssh-ng://root@10.0.0.2",
			want: []nix.Machine{{URI: "ssh-ng://root@10.0.0.2", Systems: []string{"x86_64-linux"}, MaxJobs: 1, SpeedFactor: 1, Source: "builders entry 1"}},
		},
		{
			name: "every column, dashes for defaults",
			spec: "ssh://nix@itchy i686-linux,x86_64-linux /home/nix/.ssh/id 8 2.5 kvm,benchmark benchmark " + hostKey,
			want: []nix.Machine{{
				URI: "ssh://nix@itchy", Systems: []string{"i686-linux", "x86_64-linux"}, SSHKey: "/home/nix/.ssh/id",
				MaxJobs: 8, SpeedFactor: 2.5, SupportedFeatures: []string{"kvm", "benchmark"},
				MandatoryFeatures: []string{"benchmark"}, PublicHostKey: hostKey, Source: "builders entry 1",
			}},
		},
		{
			name: "dashes, mandatory features are supported ones, bare host gets ssh://",
			spec: "pi - - - - - kvm -",
			want: []nix.Machine{{URI: "ssh://pi", Systems: []string{"x86_64-linux"}, MaxJobs: 1, SpeedFactor: 1,
				SupportedFeatures: []string{"kvm"}, MandatoryFeatures: []string{"kvm"}, Source: "builders entry 1"}},
		},
		{
			name: "semicolons, newlines and trailing comments",
			spec: "ssh://a x86_64-linux - 2 # fast one\n; ssh-ng://b aarch64-linux",
			want: []nix.Machine{
				{URI: "ssh://a", Systems: []string{"x86_64-linux"}, MaxJobs: 2, SpeedFactor: 1, Source: "builders entry 1"},
				{URI: "ssh-ng://b", Systems: []string{"aarch64-linux"}, MaxJobs: 1, SpeedFactor: 1, Source: "builders entry 3"},
			},
		},
		{
			name: "@file included, missing file includes nothing",
			spec: "@" + machinesFile + " ; @/nonexistent/machines",
			want: []nix.Machine{
				{URI: "ssh-ng://nix@mac", Systems: []string{"aarch64-darwin", "x86_64-darwin"}, SSHKey: "/etc/nix/mac-key",
					MaxJobs: 4, SpeedFactor: 2, SupportedFeatures: []string{"big-parallel"}, PublicHostKey: hostKey,
					Source: machinesFile + ":2"},
				{URI: "ssh://beastie", Systems: []string{"x86_64-freebsd"}, MaxJobs: 1, SpeedFactor: 1, Source: machinesFile + ":4"},
			},
		},
		{name: "max jobs not a number", spec: "ssh://a x86_64-linux - four", wantErr: `builders entry 1 "ssh://a x86_64-linux - four": max jobs "four"`},
		{name: "negative max jobs", spec: "ssh://a x86_64-linux - -1", wantErr: `max jobs "-1"`},
		{name: "speed factor not a number", spec: "ssh://ok;ssh://a x86_64-linux - 1 fast", wantErr: `builders entry 2 "ssh://a x86_64-linux - 1 fast": speed factor "fast"`},
		{name: "negative speed factor", spec: "ssh://a x86_64-linux - 1 -2", wantErr: `speed factor "-2"`},
		{name: "host key not base64", spec: "ssh://a - - - - - - not*base64", wantErr: "public host key is not base64"},
		{name: "too many columns", spec: "ssh://a - - - - - - " + hostKey + " extra", wantErr: "9 columns, at most 8"},
		{name: "no uri", spec: "- x86_64-linux", wantErr: `builders entry 1 "- x86_64-linux": no store URI`},
		{name: "not an ssh store", spec: "https://cache.example x86_64-linux", wantErr: `scheme "https"`},
		{name: "local store", spec: "local x86_64-linux", wantErr: `scheme "local"`},
		{name: "bad line in a machines file", spec: "@" + badFile, wantErr: badFile + `:2 "ssh://pi aarch64-linux - many": max jobs`},
		{name: "file including itself", spec: "@" + loop, wantErr: "includes itself"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := nix.ParseMachines(tc.spec, "x86_64-linux")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, nix.ErrBadMachine) {
					t.Fatalf("ParseMachines(%q) = %v, %v; want ErrBadMachine containing %q", tc.spec, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMachines(%q): %v", tc.spec, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseMachines(%q) =\n%+v\nwant\n%+v", tc.spec, got, tc.want)
			}
		})
	}
}

func TestMachinesFor(t *testing.T) {
	machines, err := nix.ParseMachines(`
		ssh-ng://slow x86_64-linux,aarch64-linux - 2 1
		ssh-ng://fast aarch64-linux - 4 3 kvm
		ssh-ng://bench aarch64-linux - 1 9 benchmark benchmark
		ssh-ng://mac aarch64-darwin
		ssh-ng://off riscv64-linux - 0
	`, "x86_64-linux")
	if err != nil {
		t.Fatal(err)
	}
	hosts := func(ms []nix.Machine) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Host())
		}
		return out
	}
	cases := []struct {
		system   string
		features []string
		want     []string
	}{
		{"aarch64-linux", nil, []string{"fast", "slow"}},            // fastest first; bench needs "benchmark"
		{"aarch64-linux", []string{"kvm"}, []string{"fast"}},        // only fast supports kvm
		{"aarch64-linux", []string{"benchmark"}, []string{"bench"}}, // mandatory met
		{"aarch64-linux", []string{"benchmark", "kvm"}, nil},        // no machine has both
		{"x86_64-linux", nil, []string{"slow"}},                     //
		{"aarch64-darwin", nil, []string{"mac"}},                    //
		{"x86_64-darwin", nil, nil},                                 // nobody
		{"riscv64-linux", nil, nil},                                 // max jobs 0 never builds
		{"builtin", nil, []string{"fast", "slow", "mac"}},           // every machine serves builtin
	}
	for _, tc := range cases {
		if got := hosts(nix.MachinesFor(machines, tc.system, tc.features)); !slices.Equal(got, tc.want) {
			t.Errorf("MachinesFor(%s, %v) = %v, want %v", tc.system, tc.features, got, tc.want)
		}
		if got, want := nix.HasBuilder(machines, tc.system), tc.features == nil && tc.want != nil; tc.features == nil && got != want {
			t.Errorf("HasBuilder(%s) = %v, want %v", tc.system, got, want)
		}
	}
	if got, want := nix.MachineSystems(machines), []string{"aarch64-darwin", "aarch64-linux", "x86_64-linux"}; !slices.Equal(got, want) {
		t.Errorf("MachineSystems = %v, want %v", got, want)
	}
}

// TestMachineLine: a machine written back as one builders entry parses to
// the same machine, defaults and empty columns included.
func TestMachineLine(t *testing.T) {
	for _, spec := range []string{
		"ssh-ng://root@10.0.0.2?ssh-key=/k x86_64-linux,aarch64-linux /etc/k 3 2.5 kvm,big-parallel kvm c3NoLWVkMjU1MTkgQUFBQQ==",
		"builder",
		"ssh://pi aarch64-linux - 0 - - - -",
	} {
		machines, err := nix.ParseMachines(spec, "x86_64-linux")
		if err != nil || len(machines) != 1 {
			t.Fatalf("ParseMachines(%q) = %v, %v", spec, machines, err)
		}
		m := machines[0]
		back, err := nix.ParseMachines(m.Line(), "riscv64-linux")
		if err != nil || len(back) != 1 {
			t.Fatalf("ParseMachines(Line %q) = %v, %v", m.Line(), back, err)
		}
		back[0].Source = m.Source
		if !reflect.DeepEqual(back[0], m) {
			t.Errorf("Line %q parses to\n%+v\nwant\n%+v", m.Line(), back[0], m)
		}
	}
}
