package notify

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/testenv"
)

// TestNotifierFailsOverToAnotherBuilder: two builder instances serve one
// event log (as two builders on one database do). The notifier follows the
// first; it is shut down in the middle of the stream; the notifier resumes
// on the second with Last-Event-ID and every event makes its notification
// exactly once, in order.
func TestNotifierFailsOverToAnotherBuilder(t *testing.T) {
	fe := newFakeEvents(t)
	var mu sync.Mutex
	var conns []string // "instance:Last-Event-ID" of each connection
	instance := func(name string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			conns = append(conns, name+":"+r.Header.Get("Last-Event-ID"))
			mu.Unlock()
			fe.serve(w, r)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	a, b := instance("a"), instance("b")

	var want []string
	failed := func(from, to int) {
		for i := from; i < to; i++ {
			h := fmt.Sprintf("host%02d", i)
			fe.add(farmapi.TargetFailed, map[string]any{"eval": 1, "target": 100 + i, "host": h, "system": "x86_64-linux", "reason": "build failed"})
			want = append(want, "Build failed: "+h)
		}
	}
	fe.add(farmapi.EvalStarted, map[string]any{"eval": 1, "repo": "fleet", "branch": "main", "commit": strings.Repeat("a", 40)})
	failed(0, 5)

	rec := &recorder{}
	titles := func() []string {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		var out []string
		for _, m := range rec.msgs {
			out = append(out, m.Title)
		}
		return out
	}
	n, err := New(Options{BuilderURLs: []string{a.URL, b.URL}, StateDir: t.TempDir(), Publisher: rec, RetryWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	testenv.Eventually(t, 10*time.Second, func() bool { return len(titles()) == 5 }, "five notifications through the first instance")
	// The first instance goes away with the stream open; more events are
	// written (by the other instance, say) meanwhile.
	a.CloseClientConnections()
	a.Close()
	failed(5, 10)
	testenv.Eventually(t, 10*time.Second, func() bool { return n.Cursor() == 11 }, "every event handled")

	if got := titles(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("notifications:\n%s\nwant each once, in order:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"a:", "b:6"}; strings.Join(conns, " ") != strings.Join(want, " ") {
		t.Errorf("connections %q, want %q: the second instance, resumed after event 6", conns, want)
	}
}

// TestFollowerFailsOverOnSilence: an instance that keeps the connection
// but stops sending (not even keep-alives) is taken for dead after
// IdleTimeout, and one that answers 5xx is passed over; the stream goes on
// on the other with nothing lost or repeated.
func TestFollowerFailsOverOnSilence(t *testing.T) {
	fe := newFakeEvents(t)
	for i := range 3 {
		fe.add(farmapi.TargetBuilt, map[string]any{"host": fmt.Sprint("h", i)})
	}
	release := make(chan struct{})
	defer close(release)
	var mu sync.Mutex
	var conns []string
	record := func(name string, r *http.Request) {
		mu.Lock()
		conns = append(conns, name+":"+r.Header.Get("Last-Event-ID"))
		mu.Unlock()
	}
	// frozen sends event 1 and then nothing at all.
	frozen := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record("frozen", r)
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, "id: 1\ndata: {\"id\":1,\"type\":\"target.built\",\"data\":{}}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer frozen.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record("broken", r)
		http.Error(w, "database unavailable", http.StatusServiceUnavailable)
	}))
	defer broken.Close()
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record("good", r)
		fe.serve(w, r)
	}))
	defer good.Close()

	f := &Follower{BuilderURLs: []string{frozen.URL, broken.URL, good.URL}, RetryWait: time.Millisecond, IdleTimeout: 300 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []int64
	err := f.Follow(ctx, 0, func(_ context.Context, ev Event) error {
		got = append(got, ev.ID)
		if ev.ID == 3 {
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[1 2 3]" {
		t.Errorf("handled %v, want [1 2 3]", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "frozen: broken:1 good:1"; strings.Join(conns, " ") != want {
		t.Errorf("connections %q, want %q", strings.Join(conns, " "), want)
	}
}
