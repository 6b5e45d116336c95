package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/queue"
)

// Lister is what the metrics read of the queue.
type Lister interface {
	List(ctx context.Context, opts queue.ListOptions) ([]queue.Job, error)
}

// Metrics is the builder's Prometheus registry; it implements
// pipeline.Metrics.
type Metrics struct {
	reg       *prometheus.Registry
	evalDur   prometheus.Histogram
	buildDur  *prometheus.HistogramVec
	pushDur   prometheus.Histogram
	pushBytes prometheus.Counter
	failures  *prometheus.CounterVec

	gcDur          prometheus.Histogram
	gcFreedObjects prometheus.Counter
	gcFreedBytes   prometheus.Counter
	cacheObjects   prometheus.Gauge
	cacheBytes     prometheus.Gauge
	storeGCDur     prometheus.Histogram
	storeGCFreed   prometheus.Counter
	storeFree      prometheus.Gauge
}

// New registers the builder's collectors, q's depth and oldest job among
// them, for this process's instance (pipeline.DefaultInstance).
func New(q Lister) *Metrics {
	return NewInstance(q, pipeline.DefaultInstance())
}

// NewInstance is New for the builder instance named instance. Several
// instances of one farm each serve their own durations and failures, with
// farm_builder_info naming the instance; the queue's depth and oldest job
// are read from the shared queue, so every instance reports the same.
func NewInstance(q Lister, instance string) *Metrics {
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "farm_builder_info", Help: "Names the builder instance whose metrics these are (1).",
		ConstLabels: prometheus.Labels{"builder_instance": instance},
	})
	info.Set(1)
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		evalDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "farm_evaluation_duration_seconds", Help: "Time to evaluate every host of a commit.",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 12),
		}),
		buildDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "farm_build_duration_seconds", Help: "Time to build one host's closure, by system.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}, []string{"system"}),
		pushDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "farm_push_duration_seconds", Help: "Time to push one host's closure to the cache.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
		pushBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "farm_pushed_bytes_total", Help: "Compressed bytes uploaded to the binary cache.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "farm_failures_total", Help: "Failures by kind: eval, build, push, status, diff, gc (the cache's collection), store-gc.",
		}, []string{"kind"}),
		gcDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "farm_cache_gc_duration_seconds", Help: "Time of one garbage collection of the binary cache.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}),
		gcFreedObjects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "farm_cache_gc_freed_objects_total", Help: "Objects (narinfos, NARs, logs) the cache's collections deleted.",
		}),
		gcFreedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "farm_cache_gc_freed_bytes_total", Help: "Bytes the cache's collections deleted.",
		}),
		cacheObjects: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "farm_cache_objects", Help: "Narinfos and NARs in the binary cache after the last collection.",
		}),
		cacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "farm_cache_bytes", Help: "Bytes of narinfos and NARs in the binary cache after the last collection.",
		}),
		storeGCDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "farm_store_gc_duration_seconds", Help: "Time of one garbage collection of the builder's Nix store.",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 14),
		}),
		storeGCFreed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "farm_store_gc_freed_bytes_total", Help: "Bytes the collections of the builder's Nix store freed.",
		}),
		storeFree: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "farm_store_free_bytes", Help: "Free bytes on the Nix store's file system at the last check.",
		}),
	}
	for _, kind := range []string{"eval", "build", "push", "status", "diff", "gc", "store-gc"} {
		m.failures.WithLabelValues(kind)
	}
	m.reg.MustRegister(
		info, m.evalDur, m.buildDur, m.pushDur, m.pushBytes, m.failures,
		m.gcDur, m.gcFreedObjects, m.gcFreedBytes, m.cacheObjects, m.cacheBytes, m.storeGCDur, m.storeGCFreed, m.storeFree,
		queueCollector{q: q},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves the registry (GET /metrics).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// EvalDuration observes the evaluation of a commit.
func (m *Metrics) EvalDuration(d time.Duration) { m.evalDur.Observe(d.Seconds()) }

// BuildDuration observes one host's build.
func (m *Metrics) BuildDuration(system string, d time.Duration) {
	m.buildDur.WithLabelValues(system).Observe(d.Seconds())
}

// PushDuration observes one host's push and counts its bytes.
func (m *Metrics) PushDuration(d time.Duration, bytes int64) {
	m.pushDur.Observe(d.Seconds())
	m.pushBytes.Add(float64(bytes))
}

// Failure counts a failure of kind (eval, build, push, status, diff).
func (m *Metrics) Failure(kind string) { m.failures.WithLabelValues(kind).Inc() }

// CacheCollected observes a successful collection of the binary cache:
// its duration, what it freed and what the cache holds afterwards.
func (m *Metrics) CacheCollected(d time.Duration, freedObjects, freedBytes, cacheObjects, cacheBytes int64) {
	m.gcDur.Observe(d.Seconds())
	m.gcFreedObjects.Add(float64(freedObjects))
	m.gcFreedBytes.Add(float64(freedBytes))
	m.cacheObjects.Set(float64(cacheObjects))
	m.cacheBytes.Set(float64(cacheBytes))
}

// StoreCollected observes a collection of the builder's Nix store.
func (m *Metrics) StoreCollected(d time.Duration, freedBytes int64) {
	m.storeGCDur.Observe(d.Seconds())
	m.storeGCFreed.Add(float64(freedBytes))
}

// StoreFree sets the free bytes of the Nix store's file system.
func (m *Metrics) StoreFree(bytes int64) { m.storeFree.Set(float64(bytes)) }

var (
	queueDepthDesc = prometheus.NewDesc("farm_queue_depth",
		"Evaluation jobs waiting in the queue.", nil, nil)
	queueOldestDesc = prometheus.NewDesc("farm_queue_oldest_job_age_seconds",
		"Age of the oldest job waiting in the queue (0 when empty).", nil, nil)
)

// queueCollector reports the queue's depth and oldest job from one listing
// per scrape.
type queueCollector struct{ q Lister }

func (c queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- queueOldestDesc
}

func (c queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	jobs, _ := c.q.List(ctx, queue.ListOptions{Kind: queue.KindEval, States: []queue.State{queue.Queued}, Limit: 10000})
	var oldest time.Time
	for _, j := range jobs {
		if oldest.IsZero() || j.CreatedAt.Before(oldest) {
			oldest = j.CreatedAt
		}
	}
	age := 0.0
	if !oldest.IsZero() {
		age = time.Since(oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(len(jobs)))
	ch <- prometheus.MustNewConstMetric(queueOldestDesc, prometheus.GaugeValue, age)
}
