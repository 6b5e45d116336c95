package farm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/farm/farmtest"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/server/servertest"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
)

// TestFarmRollouts: a served farm runs rollouts: an agent's failed report
// on the canary's manifest halts the rollout before the report's event
// (the halt event carries the canary's seq), the next wave gets nothing
// until an admin resumes through the API, and abort ends it.
func TestFarmRollouts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "agents")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	writeToken(t, tokens, "stolas", "stolas-token\n")
	if err := os.WriteFile(filepath.Join(dir, "admin"), []byte("admin-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := loadConfig(t, servertest.WriteConfig(t, dir, ""), filepath.Join(dir, "state"))
	cfg.Serve.AgentTokensDir, cfg.Serve.AdminTokenFile = tokens, filepath.Join(dir, "admin")
	base, f, logs := start(t, cfg, Options{})
	if f.rollouts == nil || f.pipeline.Rollouts != f.rollouts {
		t.Fatal("the pipeline has no rollouts")
	}
	if got := f.rollouts.Config.GateTimeout; got != 30*time.Minute {
		t.Errorf("gate timeout = %v, want the default 30m", got)
	}

	const commit = "0123456789abcdef0123456789abcdef01234567"
	path := func(host string) string { return "/nix/store/" + strings.Repeat("a", 32) + "-nixos-system-" + host }
	ro, started, err := f.rollouts.Start(ctx, pipeline.Push{
		Job: queue.Job{Repo: "homelab", Branch: "main", Commit: commit},
		Targets: []state.Target{
			{Host: "stolas", State: state.TargetBuilt, OutPath: path("stolas")},
			{Host: "andras", State: state.TargetBuilt, OutPath: path("andras")},
		},
		Settings: map[string]nix.DeploySettings{"stolas": {Wave: 0}, "andras": {Wave: 1}},
	})
	if err != nil || !started {
		t.Fatalf("Start = %v, %v", started, err)
	}
	stolas, err := f.state.Host(ctx, "stolas")
	if err != nil || stolas.DesiredPath != path("stolas") {
		t.Fatalf("canary desired = %+v, %v", stolas, err)
	}
	if h, err := f.state.Host(ctx, "andras"); err == nil && h.DesiredPath != "" {
		t.Fatalf("wave 1 offered before the canary reported: %+v", h)
	}

	admin := func(method, p string) (int, farmapi.Rollout) {
		t.Helper()
		code, body := servertest.Request(t, method, base+p, "admin-token", "")
		var out farmapi.Rollout
		if code < 300 {
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatalf("%s %s: %v: %s", method, p, err, body)
			}
		}
		return code, out
	}
	rep, _ := json.Marshal(farmapi.Report{Current: "/nix/store/" + strings.Repeat("b", 32) + "-old", Result: farmapi.ResultFailed, Reason: "health check sshd failed", Seq: stolas.DesiredSeq})
	if code, body := servertest.Request(t, http.MethodPost, base+"/api/hosts/stolas/report", "stolas-token", string(rep)); code != http.StatusNoContent {
		t.Fatalf("report = %d %s", code, body)
	}
	id := fmt.Sprint(ro.ID)
	code, got := admin(http.MethodGet, "/api/rollouts/"+id)
	if code != http.StatusOK || got.Status != "halted" || got.Halt == nil || got.Halt.Host != "stolas" {
		t.Fatalf("rollout after the canary failed = %d %+v\n%s", code, got, logs)
	}
	if h, err := f.state.Host(ctx, "andras"); err == nil && h.DesiredPath != "" {
		t.Fatalf("wave 1 offered after the canary failed: %+v", h)
	}
	events, err := f.state.EventsAfter(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	halt, report := -1, -1
	for i, ev := range events {
		switch farmapi.EventType(ev.Type) {
		case farmapi.RolloutHalted:
			halt = i
			var d farmapi.RolloutHaltedData
			if err := json.Unmarshal(ev.Data, &d); err != nil || d.Seq != stolas.DesiredSeq || d.Host != "stolas" {
				t.Errorf("halt event = %s, want stolas with seq %d", ev.Data, stolas.DesiredSeq)
			}
		case farmapi.HostReport:
			report = i
		}
	}
	if halt < 0 || report < 0 || halt > report {
		t.Errorf("halt event at %d, host report at %d: want the halt first", halt, report)
	}

	if code, _ := admin(http.MethodPost, "/api/rollouts/"+id+"/abort/"); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Errorf("a wrong path acted: %d", code)
	}
	if code, got := admin(http.MethodPost, "/api/rollouts/"+id+"/resume"); code != http.StatusOK || got.Status != "progressing" {
		t.Fatalf("resume = %d %+v", code, got)
	}
	andras, err := f.state.Host(ctx, "andras")
	if err != nil || andras.DesiredPath != path("andras") || andras.DesiredSeq <= stolas.DesiredSeq {
		t.Fatalf("wave 1 after resume = %+v, %v", andras, err)
	}
	if code, _ := admin(http.MethodPost, "/api/rollouts/"+id+"/resume"); code != http.StatusConflict {
		t.Errorf("resume of a progressing rollout = %d, want 409", code)
	}
	if code, got := admin(http.MethodPost, "/api/rollouts/"+id+"/abort"); code != http.StatusOK || got.Status != "aborted" {
		t.Fatalf("abort = %d %+v", code, got)
	}
	if code, _ := admin(http.MethodPost, "/api/rollouts/"+id+"/abort"); code != http.StatusConflict {
		t.Errorf("abort of an aborted rollout = %d, want 409", code)
	}
	if code, body := servertest.Request(t, http.MethodGet, base+"/api/rollouts/"+id, "", ""); code != http.StatusUnauthorized {
		t.Errorf("GET without the admin token = %d %s", code, body)
	}
}

// TestFarmRolloutWaves: with the real nix and the example fleet in waves
// 0, 1, 1, a push offers the canary first and wave 1 only once the canary
// switched; a canary failing the next commit halts it with wave 1 on its
// closure; a fleet rollback to the first commit goes through the waves and
// ends with every host on that commit's closure with higher seqs.
func TestFarmRolloutWaves(t *testing.T) {
	hosts := map[string]fleettest.Host{
		"alpha": {System: "x86_64-linux", Version: "1", Wave: fleettest.WaveOf(0)},
		"beta":  {System: "x86_64-linux", Version: "1", Wave: fleettest.WaveOf(1)},
		"gamma": {System: "x86_64-linux", Version: "1", Wave: fleettest.WaveOf(1)},
	}
	f := farmtest.New(t, hosts)
	f.SetNixEnv(t)
	for _, h := range []string{"beta", "gamma"} {
		writeToken(t, filepath.Join(f.Dir, "agents"), h, h+"-token\n")
	}
	base, fm, logs := start(t, f.Config(t), Options{})
	ctx := context.Background()
	host := func(name string) state.Host {
		t.Helper()
		h, err := fm.state.Host(ctx, name)
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			t.Fatal(err)
		}
		return h
	}
	report := func(name string, result farmapi.Result, current string) {
		t.Helper()
		body, _ := json.Marshal(farmapi.Report{Current: current, Result: result, Seq: host(name).DesiredSeq})
		if code, b := servertest.Request(t, http.MethodPost, base+"/api/hosts/"+name+"/report", name+"-token", string(body)); code != http.StatusNoContent {
			t.Fatalf("report of %s = %d %s", name, code, b)
		}
	}
	push := func(commit, delivery string) map[string]state.Target {
		t.Helper()
		status, body := servertest.Post(t, base, farmtest.PushHook(t, commit, delivery))
		if status != http.StatusAccepted {
			t.Fatalf("webhook: %d %s", status, body)
		}
		return farmtest.ByHost(farmtest.WaitEvaluation(t, base, farmtest.JobID(t, body), 3*time.Minute))
	}

	c1 := f.Repo.CommitAll(t, "first")
	v1 := push(c1, "d-1")
	if got := host("alpha"); got.DesiredPath != v1["alpha"].OutPath {
		t.Fatalf("canary not offered: %+v\n%s", got, logs)
	}
	for _, h := range []string{"beta", "gamma"} {
		if got := host(h); got.DesiredPath != "" {
			t.Fatalf("%s offered before the canary reported: %+v", h, got)
		}
	}
	report("alpha", farmapi.ResultSwitched, v1["alpha"].OutPath)
	for _, h := range []string{"beta", "gamma"} {
		if got := host(h); got.DesiredPath != v1[h].OutPath || got.DesiredSeq <= host("alpha").DesiredSeq {
			t.Fatalf("%s after the canary switched: %+v", h, got)
		}
		report(h, farmapi.ResultSwitched, v1[h].OutPath)
	}

	for h, v := range hosts {
		v.Version = "2"
		hosts[h] = v
	}
	c2 := f.Repo.Commit(t, hosts, "everything v2")
	v2 := push(c2, "d-2")
	if got := host("alpha"); got.DesiredPath != v2["alpha"].OutPath {
		t.Fatalf("canary not offered v2: %+v", got)
	}
	before := map[string]uint64{}
	for _, h := range []string{"alpha", "beta", "gamma"} {
		before[h] = host(h).DesiredSeq
	}
	report("alpha", farmapi.ResultFailed, v1["alpha"].OutPath)
	active, err := fm.rollouts.ActiveRollouts(ctx)
	if err != nil || len(active) != 1 || active[0].State.Commit != c2 || active[0].State.Status != "halted" {
		t.Fatalf("active rollouts after the canary failed v2 = %+v, %v", active, err)
	}
	for _, h := range []string{"beta", "gamma"} {
		if got := host(h); got.DesiredPath != v1[h].OutPath {
			t.Fatalf("%s left its v1 closure while halted: %+v", h, got)
		}
	}

	code, body := servertest.Request(t, http.MethodPost, base+"/api/rollouts", "admin-secret", `{"to":"`+c1[:10]+`"}`)
	if code != http.StatusCreated {
		t.Fatalf("rollback = %d %s", code, body)
	}
	if got := host("alpha"); got.DesiredPath != v1["alpha"].OutPath || got.DesiredSeq <= before["alpha"] {
		t.Fatalf("canary after the rollback: %+v", got)
	}
	for _, h := range []string{"beta", "gamma"} {
		if got := host(h); got.DesiredSeq != before[h] {
			t.Fatalf("%s offered the rollback before the canary: %+v", h, got)
		}
	}
	report("alpha", farmapi.ResultSwitched, v1["alpha"].OutPath)
	for _, h := range []string{"beta", "gamma"} {
		got := host(h)
		if got.DesiredPath != v1[h].OutPath || got.DesiredSeq <= before[h] || got.DesiredCommit != c1 {
			t.Fatalf("%s after the rollback's canary switched: %+v", h, got)
		}
		report(h, farmapi.ResultSwitched, v1[h].OutPath)
	}
	if active, err := fm.rollouts.ActiveRollouts(ctx); err != nil || len(active) != 0 {
		t.Errorf("active rollouts after the rollback = %+v, %v", active, err)
	}
}
