package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
	"github.com/homelab-farm/farm/internal/testenv/logindtest"
)

// TestRollout stages pushes through waves on three real agents in their
// own network namespaces: the canary c0 in wave 0, w1 and w2 in wave 1.
//
//   - the wave-1 hosts get no manifest until the canary reported its switch;
//   - a canary whose health check fails (inside its agent) halts the
//     rollout: wave 1 keeps its closure and ntfy is told once;
//   - an admin resumes one halted rollout (wave 1 then switches) and aborts
//     another (wave 1 never gets it);
//   - outside its daily maintenance window, w1 installs the closure for the
//     next boot and keeps running the old one; w2's user is at the keyboard
//     (logind, faked, says so) and w2 defers its switch until the session
//     ends;
//   - `builder rollback --to`, run as a command, rolls every host back to
//     the first commit's closures, canary first, with higher seqs.
func TestRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-host rollout test: not in -short")
	}
	t.Parallel()
	fleet := func(c0, w string) map[string]fleettest.Host {
		return map[string]fleettest.Host{
			"c0": {System: "x86_64-linux", Version: c0, Wave: fleettest.WaveOf(0)},
			"w1": {System: "x86_64-linux", Version: w, Wave: fleettest.WaveOf(1)},
			"w2": {System: "x86_64-linux", Version: w, Wave: fleettest.WaveOf(1)},
		}
	}
	lab := newFleetLab(t, fleet("1", "1"), labOptions{builderArgs: []string{"--rollout-gate-timeout", "10m"}})
	c0, w1, w2 := lab.hosts["c0"], lab.hosts["w1"], lab.hosts["w2"]
	wave1 := []string{"w1", "w2"}
	// nothingNew checks, for a while, that hosts get no newer manifest and
	// keep running closures.
	nothingNew := func(what string, closures map[string]string, hosts ...string) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			for _, h := range hosts {
				v, err := getHost(lab.base, h)
				if err != nil {
					t.Fatal(err)
				}
				if v.DesiredSeq != lab.lastSeq[h] || v.CurrentPath != closures[h] {
					t.Fatalf("%s: %s has desired seq %d (want %d) and runs %s (want %s)", what, h, v.DesiredSeq, lab.lastSeq[h], v.CurrentPath, closures[h])
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	merge := func(ms ...map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	haltTitles := func() int {
		n := 0
		for _, title := range lab.ntfy.Titles() {
			if strings.HasPrefix(title, "Rollout halted: ") {
				n++
			}
		}
		return n
	}

	// 1. The canary sleeps through the push: wave 1 waits for it.
	c0.stop()
	commitA := lab.push(t, fleet("1", "1"), "A")
	a := lab.waitDesired(t, "A, canary", "c0")
	roA := lab.rolloutOf(t, commitA)
	if roA.Status != "progressing" || roA.Wave != 0 {
		t.Fatalf("rollout of A: %s at wave %d, want progressing at wave 0", roA.Status, roA.Wave)
	}
	nothingNew("canary not reported yet", map[string]string{}, wave1...)
	c0.start(t)
	lab.waitHost(t, "c0", "switched", a["c0"])
	a = merge(a, lab.waitDesired(t, "A, wave 1", wave1...))
	lab.waitHost(t, "w1", "switched", a["w1"])
	lab.waitHost(t, "w2", "switched", a["w2"])
	lab.waitRollout(t, commitA, "complete")

	// 2. The canary's new closure fails its health check: the rollout
	// halts, wave 1 keeps A's closures, ntfy says so once. The admin
	// resumes it: wave 1 gets B.
	commitB := lab.push(t, fleet("bad-2", "2"), "B")
	b := lab.waitDesired(t, "B, canary", "c0")
	v := lab.waitHost(t, "c0", "rolled back", a["c0"])
	if !strings.Contains(v.LastReason, "health check") {
		t.Errorf("c0 rolled back for %q, want the health check", v.LastReason)
	}
	roB := lab.waitRollout(t, commitB, "halted")
	if roB.Halt == nil || roB.Halt.Host != "c0" {
		t.Errorf("rollout of B halted on %+v, want c0", roB.Halt)
	}
	nothingNew("halted rollout", a, wave1...)
	waitUntil(t, 30*time.Second, "ntfy told of the halt", func() bool { return haltTitles() == 1 })
	page := string(getRaw(t, lab.base+"/rollouts/"+fmt.Sprint(roB.ID)))
	for _, want := range []string{"halted", "c0", "health check"} {
		if !strings.Contains(page, want) {
			t.Errorf("the dashboard's page of rollout %d does not say %q", roB.ID, want)
		}
	}
	lab.admin(t, http.MethodPost, fmt.Sprintf("/api/rollouts/%d/resume", roB.ID), http.StatusOK)
	b = merge(b, lab.waitDesired(t, "B, wave 1 (resumed)", wave1...))
	lab.waitHost(t, "w1", "switched", b["w1"])
	lab.waitHost(t, "w2", "switched", b["w2"])
	lab.waitRollout(t, commitB, "complete")

	// 3. Another halt, aborted: wave 1 never gets C.
	commitC := lab.push(t, fleet("bad-3", "3"), "C")
	lab.waitDesired(t, "C, canary", "c0")
	lab.waitHost(t, "c0", "rolled back", a["c0"])
	roC := lab.waitRollout(t, commitC, "halted")
	waitUntil(t, 30*time.Second, "ntfy told of the second halt", func() bool { return haltTitles() == 2 })
	lab.admin(t, http.MethodPost, fmt.Sprintf("/api/rollouts/%d/abort", roC.ID), http.StatusOK)
	lab.waitRollout(t, commitC, "aborted")
	nothingNew("aborted rollout", b, wave1...)

	// 4. Windows: w1 may switch only from three hours on, and installs for
	// the next boot before; rain sits at w2's keyboard.
	opens := time.Now().UTC().Add(3 * time.Hour)
	w1.restart(t, "--window", fmt.Sprintf("%02d:%02d-%02d:%02d", opens.Hour(), opens.Minute(), opens.Add(time.Hour).Hour(), opens.Add(time.Hour).Minute()),
		"--outside-window", "boot", "--time-zone", "UTC")
	logind := logindtest.New(t)
	logind.Set(t, false, logindtest.Desktop(time.Time{}))
	w2.env = withPath(w2.env, logind.Dir)
	w2.restart(t, "--window", "when-idle", "--idle-minutes", "1", "--outside-window", "boot")
	lab.poke(t, "w1") // both answer: their new settings are in force
	lab.poke(t, "w2")
	commitD := lab.push(t, fleet("4", "4"), "D")
	d := lab.waitDesired(t, "D, canary", "c0")
	lab.waitHost(t, "c0", "switched", d["c0"])
	d = merge(d, lab.waitDesired(t, "D, wave 1", wave1...))
	for _, h := range wave1 {
		v := lab.waitHost(t, h, "installed for boot", b[h])
		if got := lab.hosts[h].profile(t); got != d[h] {
			t.Errorf("%s's next boot runs %s, want D's %s", h, got, d[h])
		}
		if got := lab.hosts[h].currentSystem(t); got != b[h] {
			t.Errorf("%s runs %s, want still B's %s", h, got, b[h])
		}
		t.Logf("%s: installed for boot: %s", h, v.LastReason)
	}
	roD := lab.waitRollout(t, commitD, "complete") // installed counts: the hosts have it
	page = string(getRaw(t, lab.base+"/rollouts/"+fmt.Sprint(roD.ID)))
	if !strings.Contains(page, "installed for next boot") {
		t.Errorf("the dashboard's page of rollout %d does not say %q", roD.ID, "installed for next boot")
	}
	// rain logs out; the agent looks again when poked (or within a minute).
	logind.Set(t, false)
	lab.poke(t, "w2")
	lab.waitHost(t, "w2", "switched", d["w2"])
	// w1's window is lifted (its configuration changes): it switches.
	w1.restart(t, "--window", "always")
	lab.waitHost(t, "w1", "switched", d["w1"])

	// 5. `builder rollback --to A`: the canary first (it sleeps again, so
	// wave 1 waits), then wave 1, each with a higher seq.
	c0.stop()
	before := map[string]uint64{}
	for _, h := range lab.names {
		before[h] = lab.lastSeq[h]
	}
	cmd := exec.Command(filepath.Join(binDir, "builder"), "rollback", "--builder", lab.base,
		"--admin-token-file", lab.adminToken, "--to", commitA[:12])
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("builder rollback: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^rollout \d+: rolling back fleet to `+commitA+` \(progressing\)$`).Match(out) ||
		!strings.Contains(string(out), "wave 0: c0 (offered)") || !strings.Contains(string(out), "wave 1: w1 w2\n") {
		t.Errorf("builder rollback printed:\n%s", out)
	}
	r := lab.waitDesired(t, "rollback, canary", "c0")
	if r["c0"] != a["c0"] {
		t.Errorf("rollback offers c0 %s, want A's %s", r["c0"], a["c0"])
	}
	nothingNew("rollback before the canary reported", d, wave1...)
	c0.start(t)
	lab.waitHost(t, "c0", "switched", a["c0"])
	r = merge(r, lab.waitDesired(t, "rollback, wave 1", wave1...))
	for _, h := range lab.names {
		if r[h] != a[h] {
			t.Errorf("rollback offers %s %s, want A's %s", h, r[h], a[h])
		}
		lab.waitHost(t, h, "switched", a[h])
		if lab.lastSeq[h] <= before[h] {
			t.Errorf("%s: rollback seq %d, want more than %d", h, lab.lastSeq[h], before[h])
		}
	}

	// ntfy: one message per halt; c0's rolled-back deploys are the halts'
	// and are not told again; its next switch is a recovery.
	if got := lab.ntfy.Titles(); haltTitles() != 2 || strings.Contains(strings.Join(got, "\n"), "Deploy rolled back") {
		t.Errorf("ntfy got:\n%s\nwant two halts and no rolled-back deploy", strings.Join(got, "\n"))
	}
}

// withPath returns env with dir first in PATH.
func withPath(env []string, dir string) []string {
	out := make([]string, 0, len(env)+1)
	path := os.Getenv("PATH")
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
			continue
		}
		out = append(out, kv)
	}
	return append(out, "PATH="+dir+string(os.PathListSeparator)+path)
}

// rolloutOf returns the rollout of commit (the newest, if several).
func (lab *fleetLab) rolloutOf(t *testing.T, commit string) farmapi.Rollout {
	t.Helper()
	var found farmapi.Rollout
	for id := 1; ; id++ {
		var ro farmapi.Rollout
		status := lab.adminJSON(t, fmt.Sprintf("/api/rollouts/%d", id), &ro)
		if status == http.StatusNotFound {
			break
		}
		if status != http.StatusOK {
			t.Fatalf("GET rollout %d: HTTP %d", id, status)
		}
		if ro.Commit == commit {
			found = ro
		}
	}
	if found.ID == 0 {
		t.Fatalf("no rollout of %s", commit)
	}
	return found
}

// waitRollout waits until the rollout of commit has status.
func (lab *fleetLab) waitRollout(t *testing.T, commit, status string) farmapi.Rollout {
	t.Helper()
	var ro farmapi.Rollout
	waitUntil(t, 2*time.Minute, "rollout of "+commit+" "+status, func() bool {
		ro = lab.rolloutOf(t, commit)
		return ro.Status == status
	})
	return ro
}

// adminJSON GETs path with the admin token into v and returns the status.
func (lab *fleetLab) adminJSON(t *testing.T, path string, v any) int {
	t.Helper()
	resp := lab.adminDo(t, http.MethodGet, path)
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return resp.StatusCode
}

// admin sends method path with the admin token and wants status.
func (lab *fleetLab) admin(t *testing.T, method, path string, want int) {
	t.Helper()
	resp := lab.adminDo(t, method, path)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: HTTP %d, want %d", method, path, resp.StatusCode, want)
	}
}

// adminDo sends method path with the admin token.
func (lab *fleetLab) adminDo(t *testing.T, method, path string) *http.Response {
	t.Helper()
	token, err := os.ReadFile(lab.adminToken)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(method, lab.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// poke asks host's agent to check now, as the notifier does, until its
// agent answers.
func (lab *fleetLab) poke(t *testing.T, host string) {
	t.Helper()
	waitUntil(t, 30*time.Second, "the agent of "+host+" answers a poke", func() bool {
		req, _ := http.NewRequest(http.MethodPost, "http://"+lab.hosts[host].listen+":7741/poke", strings.NewReader(`{"woken":false}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer lab-poke-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode/100 == 2
	})
}
