package main

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/farm/farmtest"
	"github.com/homelab-farm/farm/internal/server/servertest"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
)

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
				proc := startBuilderProcessEnv(b, append(os.Environ(), f.NixEnv...), f.Args()...)
				version := 0
				push := func(change bool) time.Duration {
					wantCached := !change
					if change {
						version++
						for h := range hosts {
							hosts[h] = fleettest.Host{System: "x86_64-linux", Version: fmt.Sprintf("b%d-%d", time.Now().UnixNano(), version)}
						}
					}
					var commit string
					if change {
						commit = f.Repo.Commit(b, hosts, "change every host")
					} else {
						commit = f.Repo.CommitFile(b, "README.md", "touched "+strconv.Itoa(version)+"\n", "nothing in the flake")
						version++
					}
					start := time.Now()
					status, body := servertest.Post(b, proc.base, farmtest.PushHook(b, commit, "bench-"+commit))
					if status != http.StatusAccepted {
						b.Fatalf("webhook: %d %s", status, body)
					}
					ev := farmtest.WaitEvaluation(b, proc.base, farmtest.JobID(b, body), 10*time.Minute)
					for _, tg := range ev.Targets {
						if (wantCached && tg.State != "cached") || tg.State == "failed" {
							b.Fatalf("%s: %s %s (%s; eval %+v)", tg.Host, tg.State, tg.Reason, tg.OutPath, ev.Evaluation)
						}
					}
					return time.Since(start)
				}
				push(true) // warm: the first build of this fleet
				b.ResetTimer()
				for b.Loop() {
					push(mode == "cold")
				}
				b.StopTimer()
				b.ReportMetric(float64(peakRSS(proc.cmd.Process.Pid))/(1<<20), "peak-MiB")
			})
		}
	}
}

// peakRSS is the high-water mark of a process's resident memory.
func peakRSS(pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
