package nix

import (
	"context"
	"encoding/json"
	"slices"
)

// Capacity is where Nix runs builds from this machine: on itself (its
// system and extra-platforms, unless max-jobs is 0) and on its remote build
// machines. The farm's lanes and its "no builder for <system>" decision
// read it, so that they agree with where Nix sends a build.
type Capacity struct {
	// LocalSystems are the systems this machine builds itself: empty when
	// Nix's max-jobs is 0 (every build goes to a remote machine).
	LocalSystems []string
	// Machines are the remote build machines (the `builders` setting or a
	// machines file).
	Machines []Machine
}

// Local reports whether this machine builds system derivations itself.
func (c Capacity) Local(system string) bool {
	return slices.Contains(c.LocalSystems, system)
}

// Builds reports whether some builder, local or remote, takes system
// derivations that require no special features.
func (c Capacity) Builds(system string) bool {
	return c.Local(system) || HasBuilder(c.Machines, system)
}

// RemoteJobs is how many system builds the remote machines run at once: the
// sum of the max jobs of every machine that builds system.
func (c Capacity) RemoteJobs(system string) int {
	n := 0
	for _, m := range MachinesFor(c.Machines, system, nil) {
		n += m.MaxJobs
	}
	return n
}

// Systems returns every system some builder takes, sorted.
func (c Capacity) Systems() []string {
	out := slices.Concat(c.LocalSystems, MachineSystems(c.Machines))
	slices.Sort(out)
	return slices.Compact(out)
}

// Capacity reads where builds run: the local system and extra-platforms
// (none when max-jobs is 0) and the remote machines of builders, or of Nix's
// own `builders` setting when builders is empty.
func (c *Client) Capacity(ctx context.Context, builders string) (Capacity, error) {
	cfg, err := c.buildConfig(ctx)
	if err != nil {
		return Capacity{}, err
	}
	machines, err := cfg.machines(builders)
	if err != nil {
		return Capacity{}, err
	}
	capa := Capacity{Machines: machines}
	if cfg.maxJobs != 0 {
		for _, s := range append([]string{cfg.system}, cfg.extraPlatforms...) {
			if s != "" && !slices.Contains(capa.LocalSystems, s) {
				capa.LocalSystems = append(capa.LocalSystems, s)
			}
		}
		slices.Sort(capa.LocalSystems)
	}
	return capa, nil
}

// maxJobs reads max-jobs from `nix show-config --json`: a number, or "auto"
// (taken as not 0).
func maxJobs(raw json.RawMessage) int {
	var n int
	if err := json.Unmarshal(raw, &n); err == nil {
		return n
	}
	return -1
}
