package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/farm/farmtest"
	"github.com/homelab-farm/farm/internal/server/servertest"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
)

// BenchmarkWebhooks posts signed GitHub push webhooks over loopback into a
// `builder serve` process with the durable SQLite queue and no workers (the
// webhook path alone), from FARM_BENCH_CONNS concurrent clients (default
// 16). An op is one webhook answered 202. It reports throughput, p50/p99/max
// time to the 202, and the server's resident memory at the start, at the
// end and at its peak. With FARM_BENCH_STATE_PARENT (e.g. /dev/shm) the
// queue lives there, which takes the disk out of the figure.
// scripts/bench-webhooks runs it.
func BenchmarkWebhooks(b *testing.B) {
	conns := 16
	if n, err := strconv.Atoi(os.Getenv("FARM_BENCH_CONNS")); err == nil && n > 0 {
		conns = n
	}
	dir := b.TempDir()
	cfg := hookConfig(b, dir)
	state := filepath.Join(dir, "state")
	if parent := os.Getenv("FARM_BENCH_STATE_PARENT"); parent != "" {
		var err error
		if state, err = os.MkdirTemp(parent, "bench-webhooks-"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(state) })
	}
	p := StartBuilder(b, "bench", os.Environ(), "--config", cfg, "--state-dir", state, "--workers", "0")
	push := servertest.ForgeFixture(b, "github/push.json")
	startRSS := procMem(p.PID(), "VmRSS:")
	var seq, failures atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns}, Timeout: 10 * time.Second}
	b.SetParallelism((conns + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			i := seq.Add(1)
			body := bytes.Replace(push, []byte(servertest.TestCommit), fmt.Appendf(nil, "%040x", i), -1)
			// Eight branches: every push also supersedes the one before it on its branch.
			body = bytes.Replace(body, []byte("refs/heads/main"), fmt.Appendf(nil, "refs/heads/b%d", i%8), 1)
			req := servertest.GitHubHook("push", fmt.Sprint("bench-", i), body, servertest.GHSecret)
			r, _ := http.NewRequest(http.MethodPost, p.Base+req.Path, bytes.NewReader(body))
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
			mine = append(mine, d)
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if failures.Load() > 0 {
		b.Errorf("%d requests failed", failures.Load())
	}
	if len(lat) == 0 {
		b.Fatal("no request succeeded")
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return ms(lat[min(len(lat)-1, int(float64(len(lat))*p))]) }
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(float64(startRSS)/(1<<20), "start-MiB")
	b.ReportMetric(float64(procMem(p.PID(), "VmRSS:"))/(1<<20), "end-MiB")
	b.ReportMetric(float64(procMem(p.PID(), "VmHWM:"))/(1<<20), "peak-MiB")
}

// BenchmarkWebhookBurst posts bursts of 20 concurrent unsigned 20 MiB
// webhook bodies to a `builder serve` process and reports its peak
// resident memory (VmHWM), side by side: with the default body budget
// (32 MiB) and with a budget so large that nothing is refused, as before
// the budget existed. It also reports how many posts were refused 503.
func BenchmarkWebhookBurst(b *testing.B) {
	const (
		posts = 20
		size  = 20 << 20
	)
	body := bytes.Repeat([]byte("x"), size)
	for _, bc := range []struct {
		name   string
		budget int64
	}{
		{"budget=default", config.DefaultWebhookBudget},
		{"budget=unbounded", 1 << 40},
	} {
		b.Run(bc.name, func(b *testing.B) {
			dir := b.TempDir()
			cfg := hookConfig(b, dir)
			p := StartBuilder(b, bc.name, os.Environ(), "--config", cfg, "--state-dir", filepath.Join(dir, "state"),
				"--workers", "0", "--webhook-body-budget", strconv.FormatInt(bc.budget, 10))
			before := procMem(p.PID(), "VmRSS:")
			var refused, unauthorized, failed atomic.Int64
			b.ResetTimer()
			for b.Loop() {
				var wg sync.WaitGroup
				for range posts {
					wg.Go(func() {
						req, _ := http.NewRequest(http.MethodPost, p.Base+"/hooks/github", bytes.NewReader(body))
						req.Header.Set("X-GitHub-Event", "push")
						req.Header.Set("Content-Type", "application/json")
						resp, err := http.DefaultClient.Do(req)
						if err != nil {
							failed.Add(1) // the server may close a refused upload before reading it
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						switch resp.StatusCode {
						case http.StatusServiceUnavailable:
							refused.Add(1)
						case http.StatusUnauthorized:
							unauthorized.Add(1)
						default:
							failed.Add(1)
						}
					})
				}
				wg.Wait()
			}
			b.StopTimer()
			if unauthorized.Load() == 0 {
				b.Fatalf("no post reached the signature check (%d refused, %d failed)", refused.Load(), failed.Load())
			}
			n := float64(b.N * posts)
			b.ReportMetric(float64(procMem(p.PID(), "VmHWM:"))/(1<<20), "peak-MiB")
			b.ReportMetric(float64(before)/(1<<20), "start-MiB")
			b.ReportMetric(float64(refused.Load())/n, "refused/post")
			b.ReportMetric(float64(failed.Load())/n, "failed/post")
		})
	}
}

// BenchmarkFleet measures a push through `builder serve` (a child process)
// until every host's status is final, for fleets of 1, 10 and 50 hosts:
// cold (every host changed, so built and pushed) and cached (a commit that
// changes nothing in the flake: the evaluation is reused and every host is
// found in the cache). It reports the builder's peak resident memory.
func BenchmarkFleet(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		hosts := map[string]fleettest.Host{}
		for i := range n {
			hosts[fmt.Sprintf("host%02d", i)] = fleettest.Host{System: "x86_64-linux"}
		}
		for _, mode := range []string{"cold", "cached"} {
			b.Run(fmt.Sprintf("hosts=%d/%s", n, mode), func(b *testing.B) {
				f := farmtest.New(b, hosts)
				proc := StartBuilder(b, "fleet", append(os.Environ(), f.NixEnv...), f.Args()...)
				version := 0
				push := func(change bool) {
					wantCached := !change
					var commit string
					if change {
						version++
						for h := range hosts {
							hosts[h] = fleettest.Host{System: "x86_64-linux", Version: fmt.Sprintf("b%d-%d", time.Now().UnixNano(), version)}
						}
						commit = f.Repo.Commit(b, hosts, "change every host")
					} else {
						commit = f.Repo.CommitFile(b, "README.md", "touched "+strconv.Itoa(version)+"\n", "nothing in the flake")
						version++
					}
					status, body := servertest.Post(b, proc.Base, farmtest.PushHook(b, commit, "bench-"+commit))
					if status != http.StatusAccepted {
						b.Fatalf("webhook: %d %s", status, body)
					}
					ev := farmtest.WaitEvaluation(b, proc.Base, farmtest.JobID(b, body), 10*time.Minute)
					for _, tg := range ev.Targets {
						if (wantCached && tg.State != "cached") || tg.State == "failed" {
							b.Fatalf("%s: %s %s (%s; eval %+v)", tg.Host, tg.State, tg.Reason, tg.OutPath, ev.Evaluation)
						}
					}
				}
				push(true) // warm: the first build of this fleet
				b.ResetTimer()
				for b.Loop() {
					push(mode == "cold")
				}
				b.StopTimer()
				b.ReportMetric(float64(procMem(proc.PID(), "VmHWM:"))/(1<<20), "peak-MiB")
			})
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// procMem returns a memory field of a process's /proc status ("VmRSS:",
// "VmHWM:") in bytes, or 0.
func procMem(pid int, field string) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
