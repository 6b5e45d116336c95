package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
)

// failoverLease is the job lease of the failover test: short, so that the
// test is quick, and three heartbeats long.
const failoverLease = 3 * time.Second

// TestFailover: two `builder serve` processes on one PostgreSQL schema and
// one MinIO bucket are one farm. The instance that runs a build is killed
// (SIGKILL, with its nix builds); the other takes the job when its lease
// expires and finishes it. Every host is built and pushed once, the commit
// statuses end final, and a client that followed the killed instance's
// events resumes on the other with Last-Event-ID, missing and repeating
// nothing.
func TestFailover(t *testing.T) {
	r := runFailover(t, failoverLease)
	t.Logf("failover: the job finished %s after the SIGKILL, %.2f x the lease (%s)",
		r.took.Round(time.Millisecond), r.leases(), failoverLease)
}

// BenchmarkFailover reports the time from SIGKILL of the building
// instance to the job's completion on the other as a multiple of the lease
// (x-lease).
func BenchmarkFailover(b *testing.B) {
	var sum float64
	for range b.N {
		sum += runFailover(b, failoverLease).leases()
	}
	b.ReportMetric(sum/float64(b.N), "x-lease")
}

type failoverResult struct {
	took  time.Duration
	lease time.Duration
}

func (r failoverResult) leases() float64 { return r.took.Seconds() / r.lease.Seconds() }

func runFailover(t testing.TB, lease time.Duration) failoverResult {
	// A version of this run only: the builders share this machine's Nix
	// store, where an earlier run's closures would already be valid.
	v := fmt.Sprint(time.Now().UnixNano())
	hosts := map[string]fleettest.Host{
		"alpha": {System: "x86_64-linux", Version: v},
		"beta":  {System: "x86_64-linux", Version: v},
		"slow1": {System: "x86_64-linux", Version: v, Sleep: 4},
		"slow2": {System: "x86_64-linux", Version: v, Sleep: 4},
	}
	f := NewFarm(t, hosts)
	f.UsePostgres(t)
	f.UseMinIO(t)
	commit := f.Repo.CommitAll(t, "fleet "+v)

	builders := map[int]*Builder{}
	follow := map[int]*EventStream{}
	for _, name := range []string{"a", "b"} {
		bl := StartBuilder(t, name, f.Env, f.Args(name, "--workers", "1", "--lease", lease.String())...)
		builders[bl.PID()] = bl
		follow[bl.PID()] = FollowEvents(t, bl.Base, 0)
	}
	// Each instance serves its own metrics under its own name; the queue's
	// depth is the shared queue's.
	for pid, bl := range builders {
		m := metrics(t, bl.Base)
		if !strings.Contains(m, fmt.Sprintf(`farm_builder_info{builder_instance="%s:%d"} 1`, hostname(t), pid)) {
			t.Errorf("metrics of %s do not name it (pid %d):\n%s", bl.Name, pid, m)
		}
		if !strings.Contains(m, "farm_queue_depth 0\n") {
			t.Errorf("metrics of %s: queue depth not 0 before the push", bl.Name)
		}
	}
	var first *Builder
	for _, bl := range builders {
		if first == nil || bl.Name < first.Name {
			first = bl
		}
	}
	job := f.Push(t, first.Base, commit, "failover-"+v)

	// Find the instance that runs the job once a slow host builds.
	var victim, survivor *Builder
	testenv.Eventually(t, 3*time.Minute, func() error {
		ev := GetEvaluation(t, first.Base, job)
		if ev.Hosts()["slow1"].State != state.TargetBuilding && ev.Hosts()["slow2"].State != state.TargetBuilding {
			return fmt.Errorf("hosts %v", ev.Hosts())
		}
		worker := GetJob(t, first.Base, job).Worker
		for pid, bl := range builders {
			if strings.Contains(worker, fmt.Sprintf(":%d/", pid)) {
				victim = bl
			}
		}
		if victim == nil {
			return fmt.Errorf("worker %q is none of the builders %v", worker, builders)
		}
		return nil
	}, "a slow host building")
	for _, bl := range builders {
		if bl != victim {
			survivor = bl
		}
	}
	victim.Kill()
	killed := time.Now()
	select {
	case <-follow[victim.PID()].Ended():
	case <-time.After(10 * time.Second):
		t.Fatalf("the event stream of the killed builder %s did not end", victim.Name)
	}
	seen := follow[victim.PID()].Events()
	if len(seen) == 0 {
		t.Fatalf("the killed builder %s streamed no events", victim.Name)
	}
	lastID := seen[len(seen)-1].ID
	resumed := FollowEvents(t, survivor.Base, lastID)

	ev := WaitEvaluation(t, survivor.Base, job, 3*time.Minute)
	took := time.Since(killed)

	// The survivor finished the job: every host built (or, when the killed
	// instance had pushed it, found in the cache), none failed.
	j := GetJob(t, survivor.Base, job)
	if !strings.Contains(j.Worker, fmt.Sprintf(":%d/", survivor.PID())) || j.Attempts != 2 {
		t.Errorf("job %d: worker %q, attempt %d; want the survivor %s (pid %d) on attempt 2", job, j.Worker, j.Attempts, survivor.Name, survivor.PID())
	}
	for host, tg := range ev.Hosts() {
		if tg.State != state.TargetBuilt && tg.State != state.TargetCached {
			t.Errorf("%s is %s (%s), want built or cached", host, tg.State, tg.Reason)
		}
	}
	if len(ev.Targets) != len(hosts) || ev.State != state.EvalDone {
		t.Errorf("evaluation %s with %d targets, want done with %d", ev.State, len(ev.Targets), len(hosts))
	}
	// Each closure (one store path per host) is in the bucket once.
	if n := f.NarInfos(t); n != len(hosts) {
		t.Errorf("%d narinfos in the cache, want %d", n, len(hosts))
	}

	// Events: the killed builder's stream, then the survivor's from its
	// last id, is the survivor's whole log, up to the evaluation's end.
	finished := func(evs []state.Event) int {
		for i, e := range evs {
			if e.Type == string(farmapi.EvalFinished) {
				return i
			}
		}
		return -1
	}
	testenv.Eventually(t, 30*time.Second, func() bool {
		return finished(resumed.Events()) >= 0 && finished(follow[survivor.PID()].Events()) >= 0
	}, "%s in both streams of the survivor", farmapi.EvalFinished)
	all := follow[survivor.PID()].Events()
	all = all[:finished(all)+1]
	after := resumed.Events()
	joined := append(slices.Clone(seen), after[:finished(after)+1]...)
	if !slices.EqualFunc(joined, all, func(a, b state.Event) bool { return a.ID == b.ID && a.Type == b.Type }) {
		t.Errorf("killed builder's events then the survivor's after %d:\n%s\nwant the whole log:\n%s", lastID, eventList(joined), eventList(all))
	}
	built := map[string]int{}
	for i, e := range all {
		if i > 0 && e.ID <= all[i-1].ID {
			t.Errorf("event %d after event %d: not one order", e.ID, all[i-1].ID)
		}
		if e.Type == string(farmapi.TargetBuilt) {
			var d farmapi.TargetData
			if err := json.Unmarshal(e.Data, &d); err != nil {
				t.Fatal(err)
			}
			built[d.Host]++
		}
	}
	// A host is built once: by the survivor (built), or by the killed
	// instance, whose push the survivor then finds in the cache (cached;
	// the killed instance may have died before recording it built).
	for host, tg := range ev.Hosts() {
		if built[host] > 1 || (tg.State == state.TargetBuilt && built[host] != 1) {
			t.Errorf("%s is %s with %d %s events, want at most one, and one when built: %v", host, tg.State, built[host], farmapi.TargetBuilt, built)
		}
	}

	// Statuses end final: every context's last state is success, sent once.
	testenv.Eventually(t, 30*time.Second, func() error {
		last, successes := map[string]string{}, map[string]int{}
		for _, c := range f.Statuses.Calls() {
			if !strings.HasSuffix(c.Path, "/statuses/"+commit) {
				return fmt.Errorf("status posted to %s, not for commit %s", c.Path, commit)
			}
			last[c.Context] = c.State
			if c.State == "success" {
				successes[c.Context]++
			}
		}
		for host := range hosts {
			if !slices.ContainsFunc(slices.Collect(maps.Keys(last)), func(c string) bool { return strings.HasSuffix(c, "/"+host) }) {
				return fmt.Errorf("no status for %s: %v", host, last)
			}
		}
		for c, st := range last {
			if st != "success" || successes[c] != 1 {
				return fmt.Errorf("context %s ends %s after %d successes; want one success, last", c, st, successes[c])
			}
		}
		return nil
	}, "final commit statuses")
	return failoverResult{took: took, lease: lease}
}

func eventList(evs []state.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %d %s\n", e.ID, e.Type)
	}
	return b.String()
}

// metrics is GET /metrics of the builder at base.
func metrics(t testing.TB, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func hostname(t testing.TB) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}
