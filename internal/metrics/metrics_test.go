package metrics_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/metrics"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/queue/sqlite"
)

var _ pipeline.Metrics = (*metrics.Metrics)(nil)

// fakeQueue lists fixed queued jobs.
type fakeQueue []queue.Job

func (f fakeQueue) List(_ context.Context, opts queue.ListOptions) ([]queue.Job, error) {
	if opts.Kind != queue.KindEval || len(opts.States) != 1 || opts.States[0] != queue.Queued {
		return nil, nil
	}
	return f, nil
}

func TestScrape(t *testing.T) {
	q := fakeQueue{{ID: 1, CreatedAt: time.Now().Add(-time.Hour)}, {ID: 2, CreatedAt: time.Now()}}
	m := metrics.New(q)
	m.EvalDuration(2 * time.Second)
	m.BuildDuration("aarch64-linux", time.Minute)
	m.PushDuration(time.Second, 1234)
	m.Failure("build")
	m.CacheCollected(90*time.Second, 10, 4096, 200, 1<<20)
	m.CacheCollected(30*time.Second, 5, 1024, 190, 1<<19)
	m.Failure("gc")
	m.StoreCollected(3*time.Second, 5000)
	m.StoreFree(1 << 30)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := string(b)
	for _, want := range []string{
		"farm_queue_depth 2\n",
		"farm_pushed_bytes_total 1234\n",
		`farm_failures_total{kind="build"} 1` + "\n",
		`farm_failures_total{kind="push"} 0` + "\n",
		`farm_build_duration_seconds_count{system="aarch64-linux"} 1` + "\n",
		"farm_evaluation_duration_seconds_sum 2\n",
		"farm_cache_gc_freed_objects_total 15\n",
		"farm_cache_gc_freed_bytes_total 5120\n",
		"farm_cache_objects 190\n",
		"farm_cache_bytes 524288\n",
		"farm_cache_gc_duration_seconds_sum 120\n",
		`farm_failures_total{kind="gc"} 1` + "\n",
		`farm_failures_total{kind="store-gc"} 0` + "\n",
		"farm_store_gc_freed_bytes_total 5000\n",
		"farm_store_gc_duration_seconds_count 1\n",
		"farm_store_free_bytes 1.073741824e+09\n",
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if !strings.Contains(body, "farm_queue_oldest_job_age_seconds 3600") && !strings.Contains(body, "farm_queue_oldest_job_age_seconds 3601") {
		t.Errorf("oldest job age not about an hour:\n%s", body)
	}
}

// TestInstances: two builder instances on one queue each serve their own
// failures under their own name, and the same queue depth, read from the
// shared queue.
func TestInstances(t *testing.T) {
	file := filepath.Join(t.TempDir(), "queue.db")
	scrape := func(m *metrics.Metrics) string {
		srv := httptest.NewServer(m.Handler())
		defer srv.Close()
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	var ms []*metrics.Metrics
	for _, name := range []string{"builder-a", "builder-b"} {
		q, err := sqlite.Open(context.Background(), file, queue.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		ms = append(ms, metrics.NewInstance(q, name))
		if _, err := q.Enqueue(context.Background(), queue.EnqueueRequest{Kind: queue.KindEval, Key: "homelab@" + name,
			Repo: "homelab", Branch: name, Commit: strings.Repeat("a", 40),
			Remote: queue.Remote{Forge: "github", URL: "https://github.com/rain/homelab", FullName: "rain/homelab"}}); err != nil {
			t.Fatal(err)
		}
	}
	ms[0].Failure("build")
	for i, want := range []string{`farm_failures_total{kind="build"} 1`, `farm_failures_total{kind="build"} 0`} {
		body := scrape(ms[i])
		name := []string{"builder-a", "builder-b"}[i]
		for _, w := range []string{want + "\n", "farm_queue_depth 2\n", `farm_builder_info{builder_instance="` + name + `"} 1` + "\n"} {
			if !strings.Contains(body, w) {
				t.Errorf("%s: scrape lacks %q", name, w)
			}
		}
	}
	if body := scrape(metrics.New(fakeQueue{})); !strings.Contains(body, `farm_builder_info{builder_instance="`+pipeline.DefaultInstance()+`"} 1`) {
		t.Errorf("New names no instance:\n%s", body)
	}
}
