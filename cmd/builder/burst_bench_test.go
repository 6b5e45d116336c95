package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/server/servertest"
)

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
			if err := os.WriteFile(filepath.Join(dir, "gh"), servertest.GHSecret, 0o600); err != nil {
				b.Fatal(err)
			}
			cfg := filepath.Join(dir, "builder.toml")
			if err := os.WriteFile(cfg, []byte(`[[repository]]
name = "homelab"
  [[repository.remote]]
  forge = "github"
  url = "https://github.com/alice/homelab"
  secret_files = ["gh"]
`), 0o600); err != nil {
				b.Fatal(err)
			}
			p := startBuilderProcessEnv(b, os.Environ(), "--config", cfg, "--state-dir", filepath.Join(dir, "state"),
				"--workers", "0", "--webhook-body-budget", strconv.FormatInt(bc.budget, 10))
			before := vmRSS(p.cmd.Process.Pid)
			var refused, unauthorized, failed atomic.Int64
			b.ResetTimer()
			for b.Loop() {
				var wg sync.WaitGroup
				for range posts {
					wg.Go(func() {
						req, _ := http.NewRequest(http.MethodPost, p.base+"/hooks/github", bytes.NewReader(body))
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
			b.ReportMetric(float64(peakRSS(p.cmd.Process.Pid))/(1<<20), "peak-MiB")
			b.ReportMetric(float64(before)/1024, "start-MiB")
			b.ReportMetric(float64(refused.Load())/n, "refused/post")
			b.ReportMetric(float64(failed.Load())/n, "failed/post")
		})
	}
}
