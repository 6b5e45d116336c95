package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/state"
)

// capacity is what Nix would read from a machines file (or --builders)
// spec, with local the systems this machine builds itself.
func capacity(t *testing.T, spec string, local ...string) nix.Capacity {
	t.Helper()
	machines, err := nix.ParseMachines(spec, "x86_64-linux")
	if err != nil {
		t.Fatal(err)
	}
	return nix.Capacity{LocalSystems: local, Machines: machines}
}

// TestLanes: a system's lanes are the local ones (LaneJobs) when this
// machine builds it, plus the max jobs of each machine that builds it; a
// machine with max jobs 0 or mandatory features adds none.
func TestLanes(t *testing.T) {
	const machines = "ssh-ng://a x86_64-linux,aarch64-linux - 3 1\n" +
		"ssh-ng://b aarch64-linux - 2 2 big-parallel\n" +
		"ssh-ng://c aarch64-linux - 0\n" +
		"ssh-ng://d aarch64-darwin - 4 1 kvm kvm\n" +
		"ssh-ng://e - # the local system by default\n"
	for _, tc := range []struct {
		name     string
		spec     string
		local    []string
		laneJobs int
		system   string
		want     int
		builds   bool
	}{
		{"local only, default", "", []string{"x86_64-linux"}, 0, "x86_64-linux", 2, true},
		{"local only, LaneJobs", "", []string{"x86_64-linux"}, 5, "x86_64-linux", 5, true},
		{"not built anywhere", "", []string{"x86_64-linux"}, 0, "aarch64-darwin", 0, false},
		{"local and machines", machines, []string{"x86_64-linux"}, 0, "x86_64-linux", 2 + 3 + 1, true},
		{"machines only (max-jobs 0)", machines, nil, 0, "x86_64-linux", 3 + 1, true},
		{"two machines of a system", machines, nil, 0, "aarch64-linux", 3 + 2, true},
		{"only a machine with mandatory features", machines, nil, 0, "aarch64-darwin", 0, false},
		{"local extra platform and a machine", machines, []string{"x86_64-linux", "aarch64-linux"}, 1, "aarch64-linux", 1 + 3 + 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			capa := capacity(t, tc.spec, tc.local...)
			p := &pipeline.Pipeline{LaneJobs: tc.laneJobs}
			if got := p.Lanes(capa, tc.system); got != tc.want {
				t.Errorf("Lanes(%s) = %d, want %d", tc.system, got, tc.want)
			}
			if got := capa.Builds(tc.system); got != tc.builds {
				t.Errorf("Builds(%s) = %v, want %v", tc.system, got, tc.builds)
			}
		})
	}
}

// TestLanesFromMachines: the pipeline builds as many targets of a system at
// once as the machines list gives it lanes, never more, and skips a system
// that only a machine needing special features serves.
func TestLanesFromMachines(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spec  string
		local []string
		want  map[string]int // system: builds at once
	}{
		{"remote machines only", "ssh-ng://a x86_64-linux - 3\nssh-ng://b x86_64-linux,aarch64-linux - 2\nssh-ng://mac aarch64-darwin - 4 1 - big-parallel",
			nil, map[string]int{"x86_64-linux": 5, "aarch64-linux": 2}},
		{"local and one machine", "ssh-ng://pi aarch64-linux - 1", []string{"x86_64-linux"},
			map[string]int{"x86_64-linux": 2, "aarch64-linux": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			capa := capacity(t, tc.spec, tc.local...)
			var asked string
			h.p.Builders = "--builders as given"
			h.nix.capacity = func(_ context.Context, builders string) (nix.Capacity, error) {
				asked = builders
				return capa, nil
			}
			hosts := map[string]fleetHost{"mac": {System: "aarch64-darwin", Version: "1"}}
			systemOf := map[string]string{}
			for system, n := range tc.want {
				for i := range 2*n + 1 {
					name := fmt.Sprintf("%s-%d", map[string]string{"x86_64-linux": "pc", "aarch64-linux": "pi"}[system], i)
					hosts[name] = fleetHost{System: system, Version: "1"}
					systemOf[name] = system
				}
			}
			var mu sync.Mutex
			running, peak, started, total := map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
			for _, system := range systemOf {
				total[system]++
			}
			h.nix.realise = func(ctx context.Context, drv string, opts nix.BuildOptions) ([]string, error) {
				host := strings.TrimPrefix(opts.AddRoot, h.gc+"/")
				system := systemOf[host]
				mu.Lock()
				running[system]++
				started[system]++
				peak[system] = max(peak[system], running[system])
				mu.Unlock()
				// Hold the build until the lane is full (or every build of
				// the system started, or a while passed), so that the peak
				// is the lane's width.
				for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
					mu.Lock()
					full := running[system] >= tc.want[system] || started[system] == total[system]
					mu.Unlock()
					if full {
						break
					}
				}
				time.Sleep(20 * time.Millisecond)
				mu.Lock()
				running[system]--
				mu.Unlock()
				return h.realise(ctx, drv, opts)
			}
			j := h.job(h.commit(t, hosts, "fleet"))
			res := h.process(t, j)
			if asked != h.p.Builders {
				t.Errorf("capacity read for builders %q, want %q", asked, h.p.Builders)
			}
			for system, want := range tc.want {
				if peak[system] != want {
					t.Errorf("%s: %d builds at once, want %d", system, peak[system], want)
				}
			}
			got := h.targets(t, j.ID)
			if mac := got["mac"]; mac.State != state.TargetSkipped || mac.Reason != "no builder for aarch64-darwin" {
				t.Errorf("mac = %s (%s), want skipped: no builder for aarch64-darwin", mac.State, mac.Reason)
			}
			if res.Failed != 0 || res.Hosts != len(hosts) {
				t.Errorf("result = %+v, want %d hosts, none failed", res, len(hosts))
			}
		})
	}
}

// TestRemoteBuilderDownReason: a build no machine could start because its
// remote builders are down fails with a reason naming each machine and
// SSH's cause; other failures keep Nix's last line.
func TestRemoteBuilderDownReason(t *testing.T) {
	nixErr := func(stderr string) error {
		return &nix.Error{Cmd: "nix-store --realise", Stderr: stderr, Err: errors.New("exit status 1")}
	}
	for _, tc := range []struct {
		name   string
		err    error
		reason string
	}{
		{"machine refuses", nixErr("ssh: connect to host 10.233.7.2 port 22: Connection refused\n" +
			"cannot build on 'ssh-ng://root@10.233.7.2': error: cannot open connection to remote store 'ssh-ng://root@10.233.7.2': error: unexpected end-of-file\n" +
			"error: unable to start any build; remote machines may not have all required system features.\n"),
			"build failed: no machine could build it: ssh-ng://root@10.233.7.2: connection refused"},
		{"two machines down", nixErr("ssh: connect to host 10.233.7.2 port 22: No route to host\n" +
			"cannot build on 'ssh-ng://root@10.233.7.2': error: cannot open connection to remote store 'ssh-ng://root@10.233.7.2': error: unexpected end-of-file\n" +
			"root@10.233.8.2: Permission denied (publickey).\n" +
			"cannot build on 'ssh-ng://root@10.233.8.2': error: cannot open connection to remote store 'ssh-ng://root@10.233.8.2': error: unexpected end-of-file\n" +
			"error: unable to start any build; remote machines may not have all required system features.\n"),
			"build failed: no machine could build it: ssh-ng://root@10.233.7.2: no route to host; ssh-ng://root@10.233.8.2: root@10.233.8.2: Permission denied (publickey)"},
		{"build itself fails", nixErr("building '/nix/store/x.drv'...\nerror: builder for '/nix/store/x.drv' failed with exit code 1\n"),
			"build failed: nix-store --realise: builder for '/nix/store/x.drv' failed with exit code 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.p.BuildRetries = -1
			h.nix.realise = func(context.Context, string, nix.BuildOptions) ([]string, error) { return nil, tc.err }
			j := h.job(h.commit(t, map[string]fleetHost{"alpha": {Version: "1"}}, "fleet"))
			h.process(t, j)
			if a := h.targets(t, j.ID)["alpha"]; a.State != state.TargetFailed || a.Reason != tc.reason {
				t.Errorf("alpha = %s (%q), want failed (%q)", a.State, a.Reason, tc.reason)
			}
		})
	}
}
