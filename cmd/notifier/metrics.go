package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/homelab-farm/farm/internal/httpserve"
	"github.com/homelab-farm/farm/internal/notify"
)

// metrics is the notifier's Prometheus registry; it implements
// notify.Metrics.
type metrics struct {
	reg     *prometheus.Registry
	skipped *prometheus.CounterVec
	stream  *prometheus.CounterVec
}

var _ notify.Metrics = (*metrics)(nil)

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "farm_notifier_notifications_skipped_total",
			Help: "Notifications given up after their bounded tries, by reason: permanent (refused), transient (kept failing).",
		}, []string{"reason"}),
		stream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "farm_notifier_stream_errors_total",
			Help: "Protocol errors of the builder's event stream, by kind.",
		}, []string{"kind"}),
	}
	for _, r := range []string{notify.SkippedPermanent, notify.SkippedTransient} {
		m.skipped.WithLabelValues(r)
	}
	m.stream.WithLabelValues(notify.StreamOversize)
	m.reg.MustRegister(m.skipped, m.stream, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) NotificationSkipped(reason string) { m.skipped.WithLabelValues(reason).Inc() }
func (m *metrics) StreamError(kind string)           { m.stream.WithLabelValues(kind).Inc() }

// serveMetrics serves GET /metrics on addr until ctx is done; the returned
// function waits for the server to stop.
func serveMetrics(ctx context.Context, addr string, m *metrics, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := httpserve.Serve(ctx, ln, mux, httpserve.Options{WriteTimeout: 30 * time.Second, Drain: 5 * time.Second, Log: log})
		if err != nil {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	return func() { <-done }, nil
}
