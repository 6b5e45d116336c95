package pipeline

import (
	"context"
	"strings"
	"sync"

	"github.com/homelab-farm/farm/internal/nix"
)

// slot is one place where a lane builds: this machine or one remote build
// machine, running up to jobs builds at once.
type slot struct {
	name    string       // "local" or the machine's store URI
	machine *nix.Machine // nil: this machine
	jobs    int
	busy    int
	down    string // why the machine could not be used ("ssh-ng://b: connection refused"); "" while up
}

// placer hands the builds of one system to its slots: this machine's
// (LaneJobs) when it builds the system, then each remote machine that
// builds it (its max jobs), fastest first. A remote machine that cannot be
// used is down for the rest of the evaluation; its builds go to the other
// slots.
type placer struct {
	mu    sync.Mutex
	slots []*slot
	wake  chan struct{} // closed when a slot is freed or goes down
}

func (p *Pipeline) placer(capa nix.Capacity, system string) *placer {
	pl := &placer{wake: make(chan struct{})}
	if capa.Local(system) {
		pl.slots = append(pl.slots, &slot{name: "local", jobs: p.localJobs()})
	}
	for _, m := range nix.MachinesFor(capa.Machines, system, nil) {
		pl.slots = append(pl.slots, &slot{name: m.URI, machine: &m, jobs: m.MaxJobs})
	}
	return pl
}

func (p *Pipeline) localJobs() int {
	if p.LaneJobs <= 0 {
		return 2
	}
	return p.LaneJobs
}

// jobs is how many builds the slots run at once.
func (pl *placer) jobs() int {
	n := 0
	for _, s := range pl.slots {
		n += s.jobs
	}
	return n
}

// acquire takes a free build of the first slot that is up and not in
// skip, waiting for one to be freed; it returns nil when every slot is down
// or skipped.
func (pl *placer) acquire(ctx context.Context, skip map[*slot]bool) (*slot, error) {
	for {
		pl.mu.Lock()
		usable := false
		for _, s := range pl.slots {
			if s.down != "" || skip[s] {
				continue
			}
			usable = true
			if s.busy < s.jobs {
				s.busy++
				pl.mu.Unlock()
				return s, nil
			}
		}
		wake := pl.wake
		pl.mu.Unlock()
		if !usable {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wake:
		}
	}
}

// release gives back a build of s; a non-empty down marks s's machine down
// with that reason.
func (pl *placer) release(s *slot, down string) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	s.busy--
	if down != "" && s.down == "" {
		s.down = down
	}
	close(pl.wake)
	pl.wake = make(chan struct{})
}

// downReasons are the reasons of the slots that are down, in slot order.
func (pl *placer) downReasons() []string {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	var out []string
	for _, s := range pl.slots {
		if s.down != "" {
			out = append(out, s.down)
		}
	}
	return out
}

// options are the build options that pin a build to s: this machine alone,
// or s's machine alone.
func (s *slot) options(opts nix.BuildOptions) nix.BuildOptions {
	if s.machine == nil {
		opts.LocalOnly = true
		return opts
	}
	opts.Builders = s.machine.Line()
	opts.RemoteOnly = true
	return opts
}

// unplacedError is a build that no slot could take: every machine that
// builds its system was down or could not build it.
type unplacedError struct {
	reasons []string
}

func (e *unplacedError) Error() string {
	if len(e.reasons) == 0 {
		return "no machine could build it"
	}
	return "no machine could build it: " + strings.Join(e.reasons, "; ")
}
