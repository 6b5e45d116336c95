package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
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
)

// buildBuilder compiles this command once per test binary run.
var buildBuilder = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "builder-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "builder")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// builderProcess is `builder serve` running as a child process.
type builderProcess struct {
	cmd  *exec.Cmd
	logs *logWatcher
	base string
	done chan error // receives the exit once; exited is closed after
	exit chan struct{}
}

func startBuilderProcess(t *testing.T, args ...string) *builderProcess {
	t.Helper()
	return startBuilderProcessEnv(t, os.Environ(), args...)
}

// holdEnv names the variable that makes this test binary run `builder
// serve` with workers that hold each job for its duration instead of
// evaluating it (see TestMain).
const holdEnv = "BUILDER_TEST_HOLD"

// startHoldingProcess runs this test binary as `builder serve` whose
// workers hold every job for hold, then complete it.
func startHoldingProcess(t *testing.T, hold time.Duration, args ...string) *builderProcess {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return startProcess(t, self, append(os.Environ(), holdEnv+"="+hold.String()), args...)
}

// runHolding is the child side of startHoldingProcess: os.Args are those of
// `builder serve`.
func runHolding(hold string) int {
	d, err := time.ParseDuration(hold)
	if err != nil || len(os.Args) < 2 || os.Args[1] != "serve" {
		fmt.Fprintf(os.Stderr, "%s=%q with arguments %q: want a duration and serve\n", holdEnv, hold, os.Args[1:])
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runServeWith(ctx, os.Args[2:], os.Getenv, os.Stdout, os.Stderr, serveHooks{process: farmtest.HoldJobs(d)}); err != nil {
		fmt.Fprintf(os.Stderr, "builder: %v\n", err)
		return 1
	}
	return 0
}

var completedRE = regexp.MustCompile(`msg="job completed" .*job=(\d+)`)

// TestServeCrashRecovery SIGKILLs a builder that holds claimed jobs while
// pushes keep arriving, restarts it, and checks that every push answered
// 202 is evaluated exactly once.
func TestServeCrashRecovery(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the builder binary")
	}
	dir := t.TempDir()
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
	state := filepath.Join(dir, "state")
	common := []string{"--config", cfg, "--state-dir", state, "--workers", "2", "--lease", "1s"}

	// The first builder holds every job it claims for an hour.
	first := startHoldingProcess(t, time.Hour, common...)
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
			r, _ := http.NewRequest(http.MethodPost, first.base+req.Path, strings.NewReader(string(body)))
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
	deadline := time.Now().Add(90 * time.Second)
	for {
		running := servertest.Jobs(t, first.base, "?state=running")
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if len(running) == 2 && n >= 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("builder never held 2 claims with 20 pushes acknowledged (running %d, acked %d)\n%s", len(running), n, first.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := first.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	<-first.done
	close(stop)
	wg.Wait()
	if got := completedRE.FindAllString(first.logs.String(), -1); len(got) != 0 {
		t.Fatalf("first builder completed jobs: %v", got)
	}

	second := startHoldingProcess(t, time.Millisecond, common...)
	var jobs []queue.Job
	deadline = time.Now().Add(30 * time.Second)
	for {
		if len(servertest.Jobs(t, second.base, "?state=queued,running")) == 0 {
			jobs = servertest.Jobs(t, second.base, "?limit=1000")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs not all done after restart\n%s", second.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}

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
	for _, m := range completedRE.FindAllStringSubmatch(second.logs.String(), -1) {
		completions[m[1]]++
	}
	for _, j := range jobs {
		if n := completions[fmt.Sprint(j.ID)]; n != 1 {
			t.Errorf("job %d completed %d times, want exactly once", j.ID, n)
		}
	}
	t.Logf("%d pushes acknowledged before SIGKILL, %d jobs in the queue, all done once", len(acked), len(jobs))
}
