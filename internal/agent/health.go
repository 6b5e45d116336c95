package agent

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"sort"
	"strings"

	"github.com/homelab-farm/farm/internal/textcut"
)

// healthCheck runs every configured check; the first failure is returned.
// failedBefore are the systemd units that had failed before the switch.
func (a *Agent) healthCheck(ctx context.Context, failedBefore map[string]bool) error {
	for _, c := range a.cfg.HealthChecks {
		if err := a.runCheck(ctx, "/bin/sh", "-c", c); err != nil {
			return fmt.Errorf("health check %q: %w", c, err)
		}
	}
	if a.cfg.SystemdHealth {
		// Wait for the units the switch started to settle; the answer
		// itself ("degraded" because of a unit that failed long ago)
		// does not decide, the failed units do.
		_ = a.runCheck(ctx, a.systemctl(), "is-system-running", "--wait")
		var fresh []string
		for u := range a.failedUnits(ctx) {
			if !failedBefore[u] {
				fresh = append(fresh, u)
			}
		}
		if len(fresh) > 0 {
			sort.Strings(fresh)
			return fmt.Errorf("health check: units failed after the switch: %s", strings.Join(fresh, ", "))
		}
	}
	if err := a.builderReachable(ctx); err != nil {
		return fmt.Errorf("health check: builder unreachable: %w", err)
	}
	return nil
}

func (a *Agent) systemctl() string {
	if a.cfg.Systemctl != "" {
		return a.cfg.Systemctl
	}
	return "systemctl"
}

// failedUnits are the systemd units in the failed state (nil when systemd
// health checks are off or systemctl does not answer).
func (a *Agent) failedUnits(ctx context.Context) map[string]bool {
	if !a.cfg.SystemdHealth {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.HealthTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.systemctl(), "list-units", "--state=failed", "--plain", "--no-legend", "--no-pager")
	cmd.Env = a.cfg.Env
	out, err := cmd.Output()
	if err != nil {
		a.log.Warn("list failed units", logErr, err)
		return nil
	}
	units := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			units[f[0]] = true
		}
	}
	return units
}

func (a *Agent) runCheck(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.HealthTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = a.cfg.Env
	out, err := cmd.CombinedOutput()
	if err != nil {
		if l := textcut.LastLine(string(out), 300); l != "" {
			return fmt.Errorf("%w: %s", err, l)
		}
		return err
	}
	return nil
}

// builderReachable is one health check: the host can still talk to the farm
// (any of its builder instances).
func (a *Agent) builderReachable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.HealthTimeout)
	defer cancel()
	resp, err := a.hostAPI(ctx, http.MethodGet, "/manifest", false, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("builder answered %s", resp.Status)
	}
	return nil
}
