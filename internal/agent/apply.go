package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/textcut"
)

// apply realises, installs and activates m's closure as p says, checks the
// host's health after a switch and undoes it all on failure.
func (a *Agent) apply(ctx context.Context, st State, m deploy.Manifest, previous string, p plan) (Outcome, error) {
	log := a.log.With(logSeq, m.Seq, logPath, m.StorePath)
	from := a.cfg.CacheURL
	if from == "" {
		from = m.Cache
	}
	log.Info("applying manifest", "previous", previous, "cache", from)
	err := a.nix.RealiseFrom(ctx, m.StorePath, nix.SubstituteOptions{
		From: from, TrustedKeys: []string{a.cfg.CacheKey}, Store: a.cfg.Store,
	})
	if err != nil {
		// Nothing changed on the host; the next check tries again.
		return Outcome{Current: previous, Result: farmapi.ResultFailed, Reason: err.Error(), Seq: m.Seq, Retry: true}, nil
	}
	// From here on the host changes: a shutdown of the agent lets the
	// update finish (each step has its own timeout) rather than leave the
	// host half switched.
	ctx = context.WithoutCancel(ctx)
	if err := a.setProfile(ctx, m.StorePath); err != nil {
		return Outcome{Current: previous, Result: farmapi.ResultFailed, Reason: err.Error(), Seq: m.Seq, Retry: true}, nil
	}
	st.Pending = &Pending{Seq: m.Seq, StorePath: m.StorePath, Previous: previous, Held: p.held}
	if err := saveState(a.cfg.StateDir, st); err != nil {
		return Outcome{}, err
	}
	var failedBefore map[string]bool
	if p.mode == ModeSwitch {
		failedBefore = a.failedUnits(ctx)
	}
	failure := a.activate(ctx, m.StorePath, p.mode)
	if failure == nil && p.mode == ModeSwitch {
		failure = a.healthCheck(ctx, failedBefore)
	}
	return a.settle(ctx, m, previous, p, failure)
}

// finishInterrupted completes an update the agent (or the host) stopped in
// the middle of: a closure that became the running system and passes the
// health checks stays; anything else goes back to exactly the previous one.
func (a *Agent) finishInterrupted(ctx context.Context, p Pending, current string) (Outcome, error) {
	ctx = context.WithoutCancel(ctx)
	a.log.Warn("an update was interrupted; finishing it", logSeq, p.Seq, logPath, p.StorePath, "running", current)
	m := deploy.Manifest{Seq: p.Seq, StorePath: p.StorePath}
	pl := plan{mode: a.cfg.SwitchMode, held: p.Held}
	if p.Held != "" {
		pl.mode = ModeBoot
	}
	var failure error
	switch {
	case pl.mode == ModeBoot:
		failure = a.activate(ctx, p.StorePath, ModeBoot) // idempotent: the boot entry again
	case current == p.StorePath:
		failure = a.healthCheck(ctx, nil) // what failed before is unknown
	default:
		failure = fmt.Errorf("the update to manifest %d was interrupted during activation", p.Seq)
	}
	return a.settle(ctx, m, p.Previous, pl, failure)
}

// settle records the outcome of an activation: kept when failure is nil,
// else undone by re-activating exactly previous (in the mode of p: a
// closure installed for boot only gives the boot entry back).
func (a *Agent) settle(ctx context.Context, m deploy.Manifest, previous string, p plan, failure error) (Outcome, error) {
	log := a.log.With(logSeq, m.Seq, logPath, m.StorePath)
	if failure == nil && p.held != "" {
		log.Info("installed for the next boot", logReason, p.held)
		if err := a.remember(m, farmapi.ResultInstalled, p.held); err != nil {
			return Outcome{}, err
		}
		current, _ := a.currentSystem()
		return Outcome{Current: current, Result: farmapi.ResultInstalled, Reason: p.held, Seq: m.Seq}, nil
	}
	if failure == nil {
		if err := a.remember(m, farmapi.ResultSwitched, ""); err != nil {
			return Outcome{}, err
		}
		current, _ := a.currentSystem()
		return Outcome{Current: current, Result: farmapi.ResultSwitched, Seq: m.Seq}, nil
	}

	log.Warn("update failed, rolling back", logReason, failure.Error())
	// The manifest is spent: it is not tried again, only a newer one is.
	out := Outcome{Current: previous, Result: farmapi.ResultRolledBack, Reason: failure.Error(), Seq: m.Seq}
	switch {
	case previous == "":
		out.Result, out.Reason = farmapi.ResultFailed, failure.Error()+"; no previous system to roll back to"
	default:
		if err := a.rollback(ctx, previous, p.mode); err != nil {
			out.Result, out.Reason = farmapi.ResultFailed, failure.Error()+"; rollback: "+err.Error()
		}
	}
	if out.Result == farmapi.ResultFailed {
		out.Current, _ = a.currentSystem()
	}
	if err := a.remember(m, out.Result, out.Reason); err != nil {
		return Outcome{}, err
	}
	return out, nil
}

// rollback re-activates exactly the previous store path (not the profile's
// previous generation, which may be something else).
func (a *Agent) rollback(ctx context.Context, previous, mode string) error {
	if err := a.setProfile(ctx, previous); err != nil {
		return err
	}
	return a.activate(ctx, previous, mode)
}

// setProfile makes path the profile's newest generation and prunes the old
// ones before anything is activated, so that the boot menu the activation
// writes lists only the generations kept.
func (a *Agent) setProfile(ctx context.Context, path string) error {
	if err := os.MkdirAll(filepath.Dir(a.cfg.Profile), 0o755); err != nil {
		return fmt.Errorf("set profile: %w", err)
	}
	if err := a.nix.SetProfile(ctx, a.cfg.Store, a.cfg.Profile, path); err != nil {
		return err
	}
	a.pruneGenerations(ctx)
	return nil
}

// onDisk is where a store path's files are: under the chroot store's root
// in tests, at the path itself on a real host.
func (a *Agent) onDisk(storePath string) string {
	return nix.StoreRoot(a.cfg.Store) + storePath
}

// currentSystem is the store path the current-system link points at, or ""
// when there is none yet.
func (a *Agent) currentSystem() (string, error) {
	target, err := os.Readlink(a.cfg.CurrentSystem)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read current system: %w", err)
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(a.cfg.CurrentSystem), target)
	}
	p, err := nix.StorePath(target)
	if err != nil && nix.StoreRoot(a.cfg.Store) == "" {
		// A chain of links (a profile generation, say): resolve it.
		resolved, rerr := filepath.EvalSymlinks(a.cfg.CurrentSystem)
		if rerr == nil {
			p, err = nix.StorePath(resolved)
		}
	}
	if err != nil {
		return "", fmt.Errorf("current system %s: %w", a.cfg.CurrentSystem, err)
	}
	return p, nil
}

// activate runs the closure's switch-to-configuration in mode (ModeSwitch
// or ModeBoot). In switch mode it then makes sure the current-system link
// names the closure (NixOS's activation does it; the agent does it too, so
// that a closure whose activation does not still leaves the truth behind).
func (a *Agent) activate(ctx context.Context, path, mode string) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.SwitchTimeout)
	defer cancel()
	bin := a.onDisk(path) + "/bin/switch-to-configuration"
	cmd := exec.CommandContext(ctx, bin, mode)
	cmd.Env = a.cfg.Env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("switch-to-configuration %s: %w: %s", mode, err, textcut.LastLine(string(out), 300))
	}
	if mode != ModeSwitch {
		return nil
	}
	if cur, _ := a.currentSystem(); cur == path {
		return nil
	}
	return replaceSymlink(path, a.cfg.CurrentSystem)
}

// replaceSymlink points link at target atomically.
func replaceSymlink(target, link string) error {
	tmp := link + ".farm-agent-tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link current system: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("link current system: %w", err)
	}
	return nil
}

// pruneGenerations keeps the newest KeepGenerations generations of the
// profile (and always the current one). Failures are logged: a profile with
// too many generations is no reason to undo a switch.
func (a *Agent) pruneGenerations(ctx context.Context) {
	gens, err := a.nix.Generations(ctx, a.cfg.Store, a.cfg.Profile)
	if err != nil {
		a.log.Warn("list generations", logErr, err)
		return
	}
	var drop []int
	for i, g := range gens {
		if len(gens)-i > a.cfg.KeepGenerations && !g.Current {
			drop = append(drop, g.ID)
		}
	}
	if err := a.nix.DeleteGenerations(ctx, a.cfg.Store, a.cfg.Profile, drop...); err != nil {
		a.log.Warn("delete generations", logErr, err)
	}
}
