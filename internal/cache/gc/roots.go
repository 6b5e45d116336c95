package gc

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Retention defaults.
const (
	// DefaultGenerations is the agent's default --keep-generations: every
	// host can still fetch each generation it may roll back to.
	DefaultGenerations = 5
	// DefaultKeepDays is how long every built closure is kept.
	DefaultKeepDays = 14
)

// RootSource is what the builder's state knows about the fleet. It is read
// only; implementations are safe for concurrent use.
type RootSource interface {
	// DeployedPaths returns, for every host, the distinct store paths of its
	// last n deployed manifests, newest first.
	DeployedPaths(ctx context.Context, n int) (map[string][]string, error)
	// ReportedPaths returns, for every host that reported, the closure its
	// agent last said it runs.
	ReportedPaths(ctx context.Context) (map[string]string, error)
	// BuiltSince returns the output paths of the targets built (or found in
	// the cache) at or after since.
	BuiltSince(ctx context.Context, since time.Time) ([]string, error)
	// RunningPaths returns the output paths known so far of evaluations
	// still running.
	RunningPaths(ctx context.Context) ([]string, error)
	// RolloutPaths returns the closures of the rollouts still active: a
	// push's new closures and a rollback's targets, which hosts are yet to
	// fetch.
	RolloutPaths(ctx context.Context) ([]string, error)
}

// Retention says what the fleet keeps.
type Retention struct {
	// Generations is how many deployed manifests of each host are kept.
	Generations int
	// KeepDays is how many days every built closure is kept.
	KeepDays int
	// Pins are store paths kept whatever the fleet does.
	Pins []string
}

// Validate refuses a retention that would leave hosts nothing to roll back
// to, or a negative age.
func (r Retention) Validate() error {
	var errs []error
	if r.Generations < 1 {
		errs = append(errs, fmt.Errorf("retention of %d generations: want at least 1 (hosts roll back to what the cache keeps)", r.Generations))
	}
	if r.KeepDays < 0 {
		errs = append(errs, fmt.Errorf("keep %d days: want zero or more", r.KeepDays))
	}
	for _, p := range r.Pins {
		if _, ok := pathKey(p); !ok || !strings.HasPrefix(p, "/nix/store/") {
			errs = append(errs, fmt.Errorf("pin %q: not a store path", p))
		}
	}
	return errors.Join(errs...)
}

// Root is a store path kept, with why.
type Root struct {
	Path string
	Why  string // "web: deployed", "web: running", "built", "evaluating", "rollout", "pinned"
}

// FleetRoots computes the roots that r keeps from what src knows, at now:
// each host's last r.Generations deployed closures and its reported one,
// every closure built in the last r.KeepDays days, those of evaluations
// still running, those of active rollouts (rollback targets included), and
// the pins. A path kept for several reasons appears once,
// with the first.
func FleetRoots(ctx context.Context, src RootSource, r Retention, now time.Time) ([]Root, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	seen := make(map[string]bool)
	var roots []Root
	add := func(p, why string) {
		if p != "" && !seen[p] {
			seen[p] = true
			roots = append(roots, Root{p, why})
		}
	}
	deployed, err := src.DeployedPaths(ctx, r.Generations)
	if err != nil {
		return nil, fmt.Errorf("deployed closures: %w", err)
	}
	reported, err := src.ReportedPaths(ctx)
	if err != nil {
		return nil, fmt.Errorf("reported closures: %w", err)
	}
	for _, host := range sortedKeys(deployed, reported) {
		for _, p := range deployed[host] {
			add(p, host+": deployed")
		}
		add(reported[host], host+": running")
	}
	built, err := src.BuiltSince(ctx, now.AddDate(0, 0, -r.KeepDays))
	if err != nil {
		return nil, fmt.Errorf("built closures: %w", err)
	}
	for _, p := range built {
		add(p, "built")
	}
	running, err := src.RunningPaths(ctx)
	if err != nil {
		return nil, fmt.Errorf("running evaluations: %w", err)
	}
	for _, p := range running {
		add(p, "evaluating")
	}
	rolling, err := src.RolloutPaths(ctx)
	if err != nil {
		return nil, fmt.Errorf("rollout closures: %w", err)
	}
	for _, p := range rolling {
		add(p, "rollout")
	}
	for _, p := range r.Pins {
		add(p, "pinned")
	}
	return roots, nil
}

func sortedKeys(a map[string][]string, b map[string]string) []string {
	var out []string
	for k := range a {
		out = append(out, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
