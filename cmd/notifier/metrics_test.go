package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/homelab-farm/farm/internal/notify"
)

// TestMetrics: what the notifier gives up on shows in its metrics.
func TestMetrics(t *testing.T) {
	m := newMetrics()
	m.NotificationSkipped(notify.SkippedPermanent)
	m.NotificationSkipped(notify.SkippedPermanent)
	m.StreamError(notify.StreamOversize)
	srv := httptest.NewServer(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`farm_notifier_notifications_skipped_total{reason="permanent"} 2`,
		`farm_notifier_notifications_skipped_total{reason="transient"} 0`,
		`farm_notifier_stream_errors_total{kind="oversize_line"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q:\n%s", want, b)
		}
	}
}
