package farm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/server/servertest"
	"github.com/homelab-farm/farm/internal/state"
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
