package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/server/servertest"
)

// TestBenchWebhooks is the webhook benchmark (scripts/bench-webhooks runs
// it): signed GitHub push webhooks over loopback into a `builder serve`
// process with the durable SQLite queue, from FARM_BENCH_CONNS concurrent
// clients for FARM_BENCH_DURATION. It reports throughput, p50/p99/max time
// to the 202, and the server's resident memory over the run. It runs only
// when FARM_BENCH_WEBHOOKS is set.
func TestBenchWebhooks(t *testing.T) {
	if os.Getenv("FARM_BENCH_WEBHOOKS") == "" {
		t.Skip("benchmark: set FARM_BENCH_WEBHOOKS=1 (scripts/bench-webhooks)")
	}
	duration := 60 * time.Second
	if d, err := time.ParseDuration(os.Getenv("FARM_BENCH_DURATION")); err == nil {
		duration = d
	}
	conns := 16
	if n, err := strconv.Atoi(os.Getenv("FARM_BENCH_CONNS")); err == nil && n > 0 {
		conns = n
	}
	dir := t.TempDir()
	err := os.WriteFile(filepath.Join(dir, "gh"), servertest.GHSecret, 0o600)
	if err != nil {
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
	// No workers: the benchmark measures the webhook path alone.
	state := filepath.Join(dir, "state")
	if d := os.Getenv("FARM_BENCH_STATE_PARENT"); d != "" { // e.g. /dev/shm, to take the disk out of the figure
		if state, err = os.MkdirTemp(d, "bench-webhooks-"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(state) })
	}
	p := startBuilderProcess(t, "--config", cfg, "--state-dir", state, "--workers", "0")
	push := servertest.ForgeFixture(t, "github/push.json")
	var seq atomic.Int64
	var failures atomic.Int64
	lat := make([][]time.Duration, conns)
	var rss []int64
	var wg sync.WaitGroup
	tr := &http.Transport{MaxIdleConnsPerHost: conns}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	start := time.Now()
	end := start.Add(duration)
	for c := range conns {
		wg.Go(func() {
			for time.Now().Before(end) {
				i := seq.Add(1)
				body := bytes.Replace(push, []byte(servertest.TestCommit), fmt.Appendf(nil, "%040x", i), -1)
				// Eight branches: every push also supersedes the one before it on its branch.
				body = bytes.Replace(body, []byte("refs/heads/main"), fmt.Appendf(nil, "refs/heads/b%d", i%8), 1)
				req := servertest.GitHubHook("push", fmt.Sprint("bench-", i), body, servertest.GHSecret)
				r, _ := http.NewRequest(http.MethodPost, p.base+req.Path, bytes.NewReader(body))
				for k, v := range req.Headers {
					r.Header.Set(k, v)
				}
				t0 := time.Now()
				resp, err := client.Do(r)
				d := time.Since(t0)
				if err != nil {
					failures.Add(1)
					continue
				}
				// Read to the end so that the connection is reused.
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					failures.Add(1)
					continue
				}
				lat[c] = append(lat[c], d)
			}
		})
	}
	wg.Go(func() {
		for time.Now().Before(end) {
			rss = append(rss, vmRSS(p.cmd.Process.Pid))
			time.Sleep(min(5*time.Second, duration/10))
		}
	})
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		t.Fatalf("no request succeeded (%d failures)", failures.Load())
	}
	pct := func(p float64) time.Duration { return all[min(len(all)-1, int(float64(len(all))*p))] }
	var rssMB []string
	for _, k := range rss {
		rssMB = append(rssMB, fmt.Sprintf("%.0f", float64(k)/1024))
	}
	fmt.Printf("webhooks: %d accepted in %.1fs = %.0f req/s over %d connections; %d failed\n",
		len(all), elapsed.Seconds(), float64(len(all))/elapsed.Seconds(), conns, failures.Load())
	fmt.Printf("webhooks: time to 202: p50 %.2fms  p99 %.2fms  max %.2fms\n",
		ms(pct(0.50)), ms(pct(0.99)), ms(all[len(all)-1]))
	fmt.Printf("webhooks: server RSS (MiB) sampled over the run: %s\n", strings.Join(rssMB, " "))
	if failures.Load() > 0 {
		t.Errorf("%d requests failed", failures.Load())
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// vmRSS returns a process's resident set in KiB, or 0.
func vmRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
