package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/farm/farmtest"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/server/servertest"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
)

// hookConfig writes a builder configuration with one GitHub remote and its
// webhook secret (servertest.GHSecret) into dir and returns its path.
func hookConfig(t testing.TB, dir string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "gh"), servertest.GHSecret, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "builder.toml")
	if err := os.WriteFile(cfg, []byte(`[[repository]]
name = "homelab"
  [[repository.remote]]
  forge = "github"
  url = "https://github.com/alice/homelab"
  secret_files = ["gh"]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

var completedRE = regexp.MustCompile(`msg="job completed" .*job=(\d+)`)

// TestServeCrashRecovery SIGKILLs a builder that holds claimed jobs while
// pushes keep arriving, restarts it, and checks that every push answered
// 202 is evaluated exactly once.
func TestServeCrashRecovery(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := hookConfig(t, dir)
	common := []string{"--config", cfg, "--state-dir", filepath.Join(dir, "state"), "--workers", "2", "--lease", "1s"}

	// The first builder holds every job it claims for an hour.
	first := StartHoldingBuilder(t, "first", time.Hour, os.Environ(), common...)
	push := servertest.ForgeFixture(t, "github/push.json")
	var mu sync.Mutex
	acked := map[string]bool{} // commits answered 202
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		client := &http.Client{Timeout: 2 * time.Second}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			commit := fmt.Sprintf("%040x", i+1)
			// Each push on its own branch, so none supersedes another.
			body := servertest.Replace(push, servertest.TestCommit, commit, "refs/heads/main", fmt.Sprintf("refs/heads/b%d", i))
			req := servertest.GitHubHook("push", fmt.Sprint("d", i), body, servertest.GHSecret)
			r, _ := http.NewRequest(http.MethodPost, first.Base+req.Path, strings.NewReader(string(body)))
			for k, v := range req.Headers {
				r.Header.Set(k, v)
			}
			resp, err := client.Do(r)
			if err != nil {
				return // the builder is gone
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted {
				mu.Lock()
				acked[commit] = true
				mu.Unlock()
			}
		}
	})

	// Kill it once it holds two claims and has acknowledged some pushes
	// (generous: a loaded 2-core machine answers slowly).
	testenv.Eventually(t, 90*time.Second, func() error {
		running := servertest.Jobs(t, first.Base, "?state=running")
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if len(running) == 2 && n >= 20 {
			return nil
		}
		return fmt.Errorf("running %d, acked %d", len(running), n)
	}, "builder holding 2 claims with 20 pushes acknowledged")
	first.Kill() // SIGKILL
	close(stop)
	wg.Wait()
	if got := completedRE.FindAllString(first.Logs.String(), -1); len(got) != 0 {
		t.Fatalf("first builder completed jobs: %v", got)
	}

	second := StartHoldingBuilder(t, "second", time.Millisecond, os.Environ(), common...)
	testenv.Eventually(t, 30*time.Second, func() bool {
		return len(servertest.Jobs(t, second.Base, "?state=queued,running")) == 0
	}, "every job done after the restart")
	jobs := servertest.Jobs(t, second.Base, "?limit=1000")

	byCommit := map[string]queue.Job{}
	for _, j := range jobs {
		byCommit[j.Commit] = j
	}
	reclaimed := 0
	for commit := range acked {
		j, ok := byCommit[commit]
		if !ok {
			t.Errorf("push of %s was acknowledged with 202 but is not in the queue", commit)
			continue
		}
		if j.State != queue.Done {
			t.Errorf("job %d (%s) is %s, want done", j.ID, commit, j.State)
		}
		if j.Attempts == 2 && j.LastError == "lease expired" {
			reclaimed++
		}
	}
	if reclaimed != 2 {
		t.Errorf("%d jobs were reclaimed after their lease expired, want the 2 the dead builder held", reclaimed)
	}
	completions := map[string]int{}
	for _, m := range completedRE.FindAllStringSubmatch(second.Logs.String(), -1) {
		completions[m[1]]++
	}
	for _, j := range jobs {
		if n := completions[fmt.Sprint(j.ID)]; n != 1 {
			t.Errorf("job %d completed %d times, want exactly once", j.ID, n)
		}
	}
	t.Logf("%d pushes acknowledged before SIGKILL, %d jobs in the queue, all done once", len(acked), len(jobs))
}

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
	first := StartBuilder(t, "first", env, f.Args("--lease", "2s")...)
	status, body := servertest.Post(t, first.Base, farmtest.PushHook(t, c1, "k-1"))
	if status != http.StatusAccepted {
		t.Fatalf("webhook: %d %s", status, body)
	}
	job := farmtest.JobID(t, body)
	// Wait until the slow host builds, then kill the builder.
	testenv.Eventually(t, time.Minute, func() bool {
		var ev farmtest.EvaluationView
		farmtest.GetJSON(t, fmt.Sprintf("%s/api/evaluations/%d", first.Base, farmtest.EvalOf(t, first.Base, job)), &ev)
		return farmtest.ByHost(ev)["slow"].State == state.TargetBuilding
	}, "the slow host building")
	seenBefore := farmtest.ReadEvents(t, first.Base, 0, 3)
	_ = first.cmd.Process.Signal(syscall.SIGKILL) // the builder alone: its nix builds are the daemon's
	<-first.exit

	second := StartBuilder(t, "second", env, f.Args("--lease", "2s")...)
	restarted := time.Now()
	ev := farmtest.WaitEvaluation(t, second.Base, job, 2*time.Minute)
	t.Logf("evaluation completed %s after the restart", time.Since(restarted).Round(time.Millisecond))
	got := farmtest.ByHost(ev)
	if got["slow"].State != state.TargetBuilt || (got["alpha"].State != state.TargetBuilt && got["alpha"].State != state.TargetCached) {
		t.Fatalf("after restart: %+v", got)
	}
	// Every event once, in order; each host built (pushed) exactly once.
	all := farmtest.ReadEvents(t, second.Base, 0, 1000)
	lastSeen := seenBefore[len(seenBefore)-1].ID
	resumed := farmtest.ReadEvents(t, second.Base, lastSeen, len(all))
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
