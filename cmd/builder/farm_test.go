package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/farm/farmtest"
	"github.com/homelab-farm/farm/internal/server/servertest"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
)

// TestFarmKilledMidBuild kills the builder (SIGKILL) while a host builds;
// after a restart the evaluation completes and no host is pushed twice. The
// event stream resumes from Last-Event-ID with nothing lost or repeated.
func TestFarmKilledMidBuild(t *testing.T) {
	hosts := map[string]fleettest.Host{
		"alpha": {System: "x86_64-linux", Version: "k1"},
		"slow":  {System: "x86_64-linux", Version: "k1", Sleep: 3},
	}
	f := farmtest.New(t, hosts)
	c1 := f.Repo.CommitAll(t, "first")
	env := append(os.Environ(), f.NixEnv...)
	first := startBuilderProcessEnv(t, env, f.Args("--lease", "2s")...)
	status, body := servertest.Post(t, first.base, farmtest.PushHook(t, c1, "k-1"))
	if status != http.StatusAccepted {
		t.Fatalf("webhook: %d %s", status, body)
	}
	job := farmtest.JobID(t, body)
	// Wait until the slow host builds, then kill the builder.
	deadline := time.Now().Add(time.Minute)
	for {
		var ev farmtest.EvaluationView
		farmtest.GetJSON(t, fmt.Sprintf("%s/api/evaluations/%d", first.base, farmtest.EvalOf(t, first.base, job)), &ev)
		if farmtest.ByHost(ev)["slow"].State == state.TargetBuilding {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow host never started building")
		}
		time.Sleep(50 * time.Millisecond)
	}
	seenBefore := farmtest.ReadEvents(t, first.base, 0, 3)
	_ = first.cmd.Process.Signal(syscall.SIGKILL)
	<-first.exit

	second := startBuilderProcessEnv(t, env, f.Args("--lease", "2s")...)
	restarted := time.Now()
	ev := farmtest.WaitEvaluation(t, second.base, job, 2*time.Minute)
	t.Logf("evaluation completed %s after the restart", time.Since(restarted).Round(time.Millisecond))
	got := farmtest.ByHost(ev)
	if got["slow"].State != state.TargetBuilt || (got["alpha"].State != state.TargetBuilt && got["alpha"].State != state.TargetCached) {
		t.Fatalf("after restart: %+v", got)
	}
	// Every event once, in order; each host built (pushed) exactly once.
	all := farmtest.ReadEvents(t, second.base, 0, 1000)
	lastSeen := seenBefore[len(seenBefore)-1].ID
	resumed := farmtest.ReadEvents(t, second.base, lastSeen, len(all))
	if len(resumed) != len(all)-int(lastSeen) || resumed[0].ID != lastSeen+1 {
		t.Fatalf("resumed after %d: got %d events from %d, want %d from %d", lastSeen, len(resumed), resumed[0].ID, len(all)-int(lastSeen), lastSeen+1)
	}
	built := map[string]int{}
	for i, e := range all {
		if e.ID != int64(i+1) {
			t.Fatalf("event %d has id %d", i+1, e.ID)
		}
		if e.Type == "target.built" {
			var d struct{ Host string }
			_ = json.Unmarshal(e.Data, &d)
			built[d.Host]++
		}
	}
	if built["slow"] != 1 || built["alpha"] != 1 {
		t.Errorf("built events per host = %v, want one each", built)
	}
}

// startBuilderProcessEnv is startBuilderProcess with the environment given
// (the tests' Nix configuration).
func startBuilderProcessEnv(t testing.TB, env []string, args ...string) *builderProcess {
	t.Helper()
	bin, err := buildBuilder()
	if err != nil {
		t.Fatal(err)
	}
	return startProcess(t, bin, env, args...)
}

// startProcess runs bin serve with args; the environment is env without the
// builder's own variables.
func startProcess(t testing.TB, bin string, env []string, args ...string) *builderProcess {
	t.Helper()
	p := &builderProcess{logs: newLogWatcher(), done: make(chan error, 1), exit: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	p.cmd.Env = append(env, "BUILDER_CONFIG=", "BUILDER_STATE_DIR=", "BUILDER_LISTEN=", "BUILDER_QUEUE=", "BUILDER_DATABASE=")
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.done <- p.cmd.Wait()
		close(p.exit)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exit
	})
	p.base = "http://" + p.logs.waitAddr(t, p.done)
	return p
}
