package httpserve_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/httpserve"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestServeDrainsRequestInFlight: when ctx ends, a request in progress is
// answered before Serve returns nil, and new connections are refused.
func TestServeDrainsRequestInFlight(t *testing.T) {
	ln := listen(t)
	addr := ln.Addr().String()
	entered, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- httpserve.Serve(ctx, ln, h, httpserve.Options{Drain: 5 * time.Second}) }()

	answer := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			answer <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answer <- string(b)
	}()
	<-entered
	cancel()
	time.Sleep(50 * time.Millisecond) // let Shutdown close the listener
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("a new connection was accepted while draining")
	}
	close(release)
	if got := <-answer; got != "done" {
		t.Errorf("request in flight got %q", got)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
}

// TestServeDrainBounded: a request that outlives the drain makes Serve
// return the shutdown's error after Drain, not hang.
func TestServeDrainBounded(t *testing.T) {
	ln := listen(t)
	entered := make(chan struct{})
	block := make(chan struct{})
	defer close(block)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-block
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- httpserve.Serve(ctx, ln, h, httpserve.Options{Drain: 100 * time.Millisecond}) }()
	go func() {
		if resp, err := http.Get("http://" + ln.Addr().String() + "/"); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	cancel()
	select {
	case err := <-served:
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "shutdown") {
			t.Errorf("Serve = %v, want the drain's deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its drain")
	}
}

// TestNewDefaults: every server gets the header timeout and header cap.
func TestNewDefaults(t *testing.T) {
	s := httpserve.New(http.NotFoundHandler(), httpserve.Options{ReadTimeout: time.Minute})
	if s.ReadHeaderTimeout != 10*time.Second || s.IdleTimeout != 2*time.Minute || s.MaxHeaderBytes != 64<<10 ||
		s.ReadTimeout != time.Minute || s.WriteTimeout != 0 || s.ErrorLog == nil {
		t.Errorf("server %+v", s)
	}
}
