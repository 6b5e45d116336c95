package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/state"
)

// placeOf is where a build with opts runs: "local" when pinned to this
// machine, the machine's URI when pinned to one remote machine. A build
// pinned to neither or to both fails the test.
func placeOf(t *testing.T, opts nix.BuildOptions) string {
	switch {
	case opts.LocalOnly && !opts.RemoteOnly:
		return "local"
	case opts.RemoteOnly && !opts.LocalOnly:
		machines, err := nix.ParseMachines(opts.Builders, "x86_64-linux")
		if err != nil || len(machines) != 1 {
			t.Errorf("a remote build offered to %q (%v), want exactly one machine", opts.Builders, err)
			return "?"
		}
		return machines[0].URI
	}
	t.Errorf("a build not pinned: %+v", opts)
	return "?"
}

// downStderr is what nix-store prints when the only machine it may use
// refuses the connection.
func downStderr(uri string) error {
	return &nix.Error{Cmd: "nix-store --realise", Err: errors.New("exit status 1"), Stderr: "ssh: connect to host " +
		strings.TrimPrefix(uri, "ssh-ng://") + " port 22: Connection refused\n" +
		"cannot build on '" + uri + "': error: cannot open connection to remote store '" + uri + "': error: unexpected end-of-file\n" +
		"error: unable to start any build; remote machines may not have all required system features.\n"}
}

// unfitStderr is what nix-store prints when the one machine it may use
// does not take the derivation.
func unfitStderr() error {
	return &nix.Error{Cmd: "nix-store --realise", Err: errors.New("exit status 1"), Stderr: "Failed to find a machine for remote build!\n" +
		"derivation: x\nrequired (system, features): (x86_64-linux, [kvm])\n1 available machines:\n" +
		"error: unable to start any build; remote machines may not have all required system features.\n"}
}

// TestBuildsPinnedPerMachine: every build is pinned to one place, this
// machine (no remote builders) or one remote machine (that machine alone,
// max-jobs 0); each place runs at most its jobs at once and all of them
// build side by side; a machine that is down is offered one build, which
// then goes elsewhere with the reason in its log; with no place left the
// host fails naming each machine and why.
func TestBuildsPinnedPerMachine(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spec  string
		local bool
		down  []string       // machines that refuse connections
		unfit []string       // machines that take no build of these hosts
		hosts int            //
		peak  map[string]int // place: builds at once (nil: not checked)
		tries map[string]int // place: builds offered, when checked
		// offeredSome: places offered at least one build and at most hosts.
		// A machine unfit for every build is offered a host only when its
		// slot is free at that moment; while it refuses one, another host
		// may take the next free slot, so the exact count depends on timing.
		offeredSome []string
		failed      string              // every host's reason; "": every host built
		logs        map[string][]string // place: what the log of a host built there says
	}{
		{name: "local and two machines side by side", spec: "ssh-ng://a - - 2\nssh-ng://b - - 1", local: true, hosts: 12,
			peak: map[string]int{"local": 2, "ssh-ng://a": 2, "ssh-ng://b": 1}},
		{name: "machines only", spec: "ssh-ng://a - - 1\nssh-ng://b - - 3", hosts: 9,
			peak: map[string]int{"ssh-ng://a": 1, "ssh-ng://b": 3}},
		{name: "a machine down, local up", spec: "ssh-ng://a - - 1 2", local: true, down: []string{"ssh-ng://a"}, hosts: 6,
			tries: map[string]int{"ssh-ng://a": 1, "local": 6},
			logs:  map[string][]string{"local": {"ssh-ng://a could not be used (ssh-ng://a: connection refused); trying another machine"}}},
		{name: "first machine down, second up", spec: "ssh-ng://a - - 1\nssh-ng://b - - 2", down: []string{"ssh-ng://a"}, hosts: 5,
			tries: map[string]int{"ssh-ng://a": 1, "ssh-ng://b": 5}},
		{name: "the only machine down", spec: "ssh-ng://a - - 2", down: []string{"ssh-ng://a"}, hosts: 3,
			failed: "build failed: no machine could build it: ssh-ng://a: connection refused"},
		{name: "both machines down", spec: "ssh-ng://a - - 1\nssh-ng://b - - 1", down: []string{"ssh-ng://a", "ssh-ng://b"}, hosts: 2,
			tries:  map[string]int{"ssh-ng://a": 1, "ssh-ng://b": 1},
			failed: "build failed: no machine could build it: ssh-ng://a: connection refused; ssh-ng://b: connection refused"},
		{name: "a machine unfit for the build", spec: "ssh-ng://a - - 1 5\nssh-ng://b - - 1", unfit: []string{"ssh-ng://a"}, hosts: 3,
			tries: map[string]int{"ssh-ng://b": 3}, offeredSome: []string{"ssh-ng://a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.p.BuildRetries = -1
			var local []string
			if tc.local {
				local = []string{"x86_64-linux"}
			}
			capa := capacity(t, tc.spec, local...)
			h.nix.capacity = func(context.Context, string) (nix.Capacity, error) { return capa, nil }
			slots := 0
			for _, n := range tc.peak {
				slots += n
			}
			var mu sync.Mutex
			running, peak, tries, started := map[string]int{}, map[string]int{}, map[string]int{}, 0
			builtOn := map[string]string{} // host: place
			h.nix.realise = func(ctx context.Context, drv string, opts nix.BuildOptions) ([]string, error) {
				place := placeOf(t, opts)
				host := strings.TrimPrefix(opts.AddRoot, h.gc+"/")
				mu.Lock()
				tries[place]++
				mu.Unlock()
				for _, m := range tc.down {
					if place == m {
						return nil, downStderr(m)
					}
				}
				for _, m := range tc.unfit {
					if place == m {
						return nil, unfitStderr()
					}
				}
				mu.Lock()
				running[place]++
				started++
				peak[place] = max(peak[place], running[place])
				mu.Unlock()
				// Hold the build until every slot is busy (or every host
				// started, or a while passed), so that the peaks are the
				// slots' widths.
				for deadline := time.Now().Add(5 * time.Second); tc.peak != nil && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
					mu.Lock()
					n := 0
					for _, r := range running {
						n += r
					}
					full := n >= slots || started == tc.hosts
					mu.Unlock()
					if full {
						break
					}
				}
				// A build that succeeds waits until every machine that is
				// down was offered a build, so that one is while the
				// others run.
				for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
					mu.Lock()
					offered := true
					for _, m := range tc.down {
						offered = offered && tries[m] > 0
					}
					mu.Unlock()
					if offered {
						break
					}
				}
				time.Sleep(10 * time.Millisecond)
				mu.Lock()
				running[place]--
				builtOn[host] = place
				mu.Unlock()
				return h.realise(ctx, drv, opts)
			}
			hosts := map[string]fleetHost{}
			for i := range tc.hosts {
				hosts[fmt.Sprintf("h%02d", i)] = fleetHost{Version: "1"}
			}
			j := h.job(h.commit(t, hosts, "fleet"))
			h.process(t, j)
			got := h.targets(t, j.ID)
			for host := range hosts {
				tg := got[host]
				if tc.failed != "" {
					if tg.State != state.TargetFailed || tg.Reason != tc.failed {
						t.Errorf("%s = %s (%q), want failed (%q)", host, tg.State, tg.Reason, tc.failed)
					}
					continue
				}
				if tg.State != state.TargetBuilt {
					t.Errorf("%s = %s (%q), want built", host, tg.State, tg.Reason)
					continue
				}
			}
			for place, want := range tc.peak {
				if peak[place] != want {
					t.Errorf("%s ran %d builds at once, want %d (peaks %v)", place, peak[place], want, peak)
				}
			}
			for place, want := range tc.tries {
				if tries[place] != want {
					t.Errorf("%s was offered %d builds, want %d (offered %v)", place, tries[place], want, tries)
				}
			}
			for _, place := range tc.offeredSome {
				if tries[place] < 1 || tries[place] > tc.hosts {
					t.Errorf("%s was offered %d builds, want 1 to %d (offered %v)", place, tries[place], tc.hosts, tries)
				}
			}
			for _, m := range append(tc.down, tc.unfit...) {
				for host, place := range builtOn {
					if place == m {
						t.Errorf("%s built on %s, which cannot build", host, m)
					}
				}
			}
			if len(tc.logs) > 0 {
				said := 0
				for host, place := range builtOn {
					log, _ := os.ReadFile(h.p.LogPath(got[host].ID))
					for _, want := range tc.logs[place] {
						if strings.Contains(string(log), want) {
							said++
						}
					}
				}
				if said != 1 {
					t.Errorf("%d build logs say %v, want exactly the one that met the machine first", said, tc.logs)
				}
			}
		})
	}
}
