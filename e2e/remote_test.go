package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
	"github.com/homelab-farm/farm/internal/testenv/remotebuilder"
)

// remoteOnly is the builders' Nix configuration when this machine may not
// build itself (max-jobs 0): every build goes to a remote machine.
func remoteOnly(env []string) []string {
	return append(env, "NIX_CONFIG="+testenv.NixConfig+"max-jobs = 0\nbuilders =\n")
}

// TestRemoteBuildMachine: `builder serve --builders 'ssh-ng://…'` with a
// real second machine (a network namespace with its own Nix store and
// sshd) builds a host's closure there (its store has it, the build log
// says so), pushes it to the farm's cache, from which the real nix client
// substitutes it, and skips the host whose system no machine builds. With
// a machine down and another up, the build goes to the one up; with only
// the machine down, the host fails with a reason naming it and why.
func TestRemoteBuildMachine(t *testing.T) {
	up := remotebuilder.Start(t)
	down := remotebuilder.Start(t)
	down.Stop()
	v := fmt.Sprint(time.Now().UnixNano())
	hosts := map[string]fleettest.Host{
		"alpha": {System: "x86_64-linux", Version: v},
		"pi":    {System: "aarch64-linux", Version: v},
	}
	f := NewFarm(t, hosts)
	env := remoteOnly(f.Env)
	builder := StartBuilder(t, "a", env, f.Args("a", "--workers", "1", "--builders", down.Spec("x86_64-linux")+";"+up.Spec("x86_64-linux"))...)

	job := f.Push(t, builder.Base, f.Repo.CommitAll(t, "fleet "+v), "remote-1")
	ev := WaitEvaluation(t, builder.Base, job, 3*time.Minute)
	alpha, pi := ev.Hosts()["alpha"], ev.Hosts()["pi"]
	if alpha.State != state.TargetBuilt {
		t.Fatalf("alpha is %s (%s), want built\nlog:\n%s", alpha.State, alpha.Reason, targetLog(t, builder.Base, alpha.ID))
	}
	if pi.State != state.TargetSkipped || pi.Reason != "no builder for aarch64-linux" {
		t.Errorf("pi is %s (%s), want skipped: no builder for aarch64-linux (no machine builds it, max-jobs 0)", pi.State, pi.Reason)
	}
	// Built on the machine that is up: its store has the closure, the
	// other's does not, and the build log says where it ran.
	if !up.Has(alpha.OutPath) {
		t.Errorf("the remote store of %s lacks %s", up.Name, alpha.OutPath)
	}
	if down.Has(alpha.OutPath) {
		t.Errorf("the stopped machine %s has %s", down.Name, alpha.OutPath)
	}
	log := targetLog(t, builder.Base, alpha.ID)
	if !strings.Contains(log, "on '"+up.URI()+"'") {
		t.Errorf("alpha's build log does not say it was built on %s:\n%s", up.URI(), log)
	}
	if !strings.Contains(log, "cannot build on '"+down.URI()+"'") {
		t.Errorf("alpha's build log does not show that %s was down:\n%s", down.URI(), log)
	}
	// In the farm's cache: the real nix client substitutes it into a fresh
	// store trusting only the farm's key.
	root := t.TempDir()
	cmd := exec.Command("nix", "copy", "--from", builder.Base+"/nix-cache", "--to", "local?root="+root,
		"--option", "trusted-public-keys", f.CacheKey.Public().String(),
		"--option", "narinfo-cache-negative-ttl", "0", alpha.OutPath)
	cmd.Env = f.Env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nix copy from the farm's cache: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(root, alpha.OutPath, "version")); err != nil || strings.TrimSpace(string(b)) != "alpha "+v {
		t.Errorf("substituted alpha says %q (%v)", b, err)
	}
	resp, err := http.Get(builder.Base + "/nix-cache/" + cache.NarInfoKey(alpha.OutPath))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("narinfo of alpha: %s", resp.Status)
	}

	// Only the machine that is down: the host fails, saying which machine
	// and why.
	builder.Kill()
	onlyDown := StartBuilder(t, "b", env, f.Args("b", "--workers", "1", "--builders", down.Spec("x86_64-linux"))...)
	hosts["alpha"] = fleettest.Host{System: "x86_64-linux", Version: v + "-2"}
	job = f.Push(t, onlyDown.Base, f.Repo.Commit(t, hosts, "alpha again"), "remote-2")
	alpha = WaitEvaluation(t, onlyDown.Base, job, 3*time.Minute).Hosts()["alpha"]
	want := "build failed: no machine could build it: " + down.URI() + ": connection refused"
	if alpha.State != state.TargetFailed || alpha.Reason != want {
		t.Errorf("alpha with its machine down is %s (%q), want failed (%q)\nlog:\n%s", alpha.State, alpha.Reason, want, targetLog(t, onlyDown.Base, alpha.ID))
	}
}

// targetLog is a target's build log as the builder serves it.
func targetLog(t testing.TB, base string, id int64) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/api/targets/%d/log", base, id))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
