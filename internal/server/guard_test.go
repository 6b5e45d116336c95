package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/file"
	"github.com/homelab-farm/farm/internal/httpsafe"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/server/httperr"
	"github.com/homelab-farm/farm/internal/server/servertest"
	"github.com/homelab-farm/farm/internal/testenv"
)

// guardFixture is the builder's whole route table over the seeded state,
// a file cache, an admin token, and an agent token for alpha, served on a
// listener with small socket buffers so that a client that stops reading
// blocks the server within kilobytes.
type guardFixture struct {
	*servertest.Seeded
	s    *Server
	srv  *httptest.Server
	logs *testenv.Buffer
}

func newGuardFixture(t *testing.T, streams int, stall time.Duration) *guardFixture {
	t.Helper()
	d := servertest.Seed(t)
	logs := &testenv.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cb, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := cb.Put(context.Background(), "nix-cache-info", strings.NewReader(cache.CacheInfo), -1); err != nil {
		t.Fatal(err)
	}
	tokens := t.TempDir()
	if err := os.WriteFile(filepath.Join(tokens, "alpha"), []byte("alpha-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := New(Deps{
		Config: d.Config, Jobs: d.Queue, State: d.State, Reports: d.State, Cache: cb, LogDir: d.LogDir,
		AdminToken: []byte("admin-secret"), Agents: NewAgentTokens(tokens, log),
		Limits: Limits{MaxStreams: streams, StallTimeout: stall}, Log: log,
	})
	srv := testenv.SmallBufferServer(t, s.Handler(), 0)
	return &guardFixture{Seeded: d, s: s, srv: srv, logs: logs}
}

// rawConn connects to the fixture with a small receive buffer and sends
// head (a request line and headers, or more) as is.
func (f *guardFixture) rawConn(t *testing.T, head string) net.Conn {
	t.Helper()
	c := testenv.DialSmall(t, f.srv.Listener.Addr().String())
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *guardFixture) do(t *testing.T, method, path, auth string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// waitFor polls cond (what the server does on its own goroutines) until it
// holds, failing after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWebhookBodyBudget: slow bodies that fill the budget make the next
// webhook, of known length or chunked, a 503 with Retry-After that queues
// nothing; once they are gone the budget is whole again.
func TestWebhookBodyBudget(t *testing.T) {
	f := newGuardFixture(t, 4, time.Second)
	const mib = 1 << 20
	full := int64(2*mib + hookFirstRead)
	f.s.hookBudget = httpsafe.NewBudget(full)
	// A body announced and not sent holds only the first read's buffer.
	idle := f.rawConn(t, fmt.Sprintf("POST /hooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nContent-Length: %d\r\n\r\n", mib))
	defer idle.Close()
	// Two bodies of 1 MiB each sent in part and stalled: they hold their
	// full length, the rest of the budget.
	var slow []net.Conn
	for range 2 {
		c := f.rawConn(t, fmt.Sprintf("POST /hooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", mib, strings.Repeat(" ", 64<<10)))
		slow = append(slow, c)
	}
	waitFor(t, "the slow bodies to take the budget", func() bool { return f.s.hookBudget.Used() == full })

	for _, body := range []struct {
		name string
		r    io.Reader
	}{
		{"known length", strings.NewReader(`{"zen":"x"}`)},
		{"chunked", io.MultiReader(strings.NewReader(`{"zen":"x"}`))},
	} {
		resp, b := f.do(t, http.MethodPost, "/hooks/github", "", body.r)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s webhook with the budget full: %d %q Retry-After %q, want 503 with Retry-After",
				body.name, resp.StatusCode, b, resp.Header.Get("Retry-After"))
		}
	}
	for _, c := range append(slow, idle) {
		c.Close()
	}
	waitFor(t, "the budget to be given back", func() bool { return f.s.hookBudget.Used() == 0 })
	for _, body := range []io.Reader{strings.NewReader(`{"zen":"x"}`), io.MultiReader(strings.NewReader(strings.Repeat("x", 200<<10))),
		strings.NewReader(strings.Repeat("x", 2*mib-1))} {
		if resp, b := f.do(t, http.MethodPost, "/hooks/github", "", body); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("unsigned webhook after the budget came back: %d %q, want 401", resp.StatusCode, b)
		}
	}
	f.s.cfg.MaxBodyBytes = mib
	for _, body := range []io.Reader{strings.NewReader(strings.Repeat("x", mib+1)), io.MultiReader(strings.NewReader(strings.Repeat("x", mib+1)))} {
		if resp, b := f.do(t, http.MethodPost, "/hooks/github", "", body); resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("webhook over max_body_bytes: %d %q, want 413", resp.StatusCode, b)
		}
	}
	if got := f.s.hookBudget.Used(); got != 0 {
		t.Errorf("budget used after every request ended: %d, want 0", got)
	}
	jobs, err := f.Queue.List(context.Background(), queue.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 3 { // the fixture's own three
		t.Errorf("queue holds %d jobs, want the fixture's 3", len(jobs))
	}
}

// TestStreamLimit: with 2 slots, a third event stream or log follow gets
// 503 with Retry-After; closing one frees its slot.
func TestStreamLimit(t *testing.T) {
	f := newGuardFixture(t, 2, time.Second)
	building := f.Targets["charlie@2"]
	open := func(path string) (*http.Response, *bufio.Reader) {
		resp, err := http.Get(f.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d, want 200", path, resp.StatusCode)
		}
		br := bufio.NewReader(resp.Body)
		if _, err := br.ReadString('\n'); err != nil { // the stream is open and its slot taken
			t.Fatal(err)
		}
		return resp, br
	}
	first, _ := open("/api/events")
	open(fmt.Sprintf("/api/targets/%d/log?follow=1", building.ID))
	for _, path := range []string{"/api/events", fmt.Sprintf("/api/targets/%d/log?follow=1", building.ID)} {
		resp, b := f.do(t, http.MethodGet, path, "", nil)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("GET %s with every slot taken: %d %q, want 503 with Retry-After", path, resp.StatusCode, b)
		}
	}
	// A log that is not followed is no stream.
	if resp, _ := f.do(t, http.MethodGet, fmt.Sprintf("/api/targets/%d/log", building.ID), "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET of a whole log with every slot taken: %d, want 200", resp.StatusCode)
	}
	first.Body.Close()
	waitFor(t, "the closed stream's slot", func() bool { return f.s.streams.InUse() == 1 })
	open("/api/events")
}

// TestStalledStreamDropped: a client that opens an event stream or a log
// follow and stops reading is disconnected once a write blocks past the
// stall timeout: the handler returns, the slot is freed, and it is logged
// as a client that went away, not as an error.
func TestStalledStreamDropped(t *testing.T) {
	f := newGuardFixture(t, 1, 200*time.Millisecond)
	big := strings.Repeat("x", 16<<10)
	building := f.Targets["charlie@2"]
	for _, path := range []string{"/api/events", fmt.Sprintf("/api/targets/%d/log?follow=1", building.ID)} {
		t.Run(path, func(t *testing.T) {
			c := f.rawConn(t, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
			waitFor(t, "the stream to take its slot", func() bool { return f.s.streams.InUse() == 1 })
			for range 64 { // 1 MiB, far past what the socket buffers hold
				if strings.HasPrefix(path, "/api/events") {
					if _, err := f.State.Append(context.Background(), "test.big", map[string]string{"pad": big}); err != nil {
						t.Fatal(err)
					}
				} else {
					servertest.AppendFile(t, f.LogPath(building.ID), big)
				}
			}
			waitFor(t, "the stalled client to be dropped", func() bool { return f.s.streams.InUse() == 0 })
			c.Close()
		})
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "client went away") || strings.Contains(logs, "level=ERROR") {
		t.Errorf("logs of the dropped streams:\n%s\nwant \"client went away\" and no error", logs)
	}
}

// TestClientGoneNotAnError: a request whose client disconnects while the
// handler works is logged as a client that went away, never as a 500.
func TestClientGoneNotAnError(t *testing.T) {
	logs := &testenv.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	started, done := make(chan struct{}), make(chan struct{})
	h := httperr.Handler(log, func(w http.ResponseWriter, r *http.Request) error {
		close(started)
		<-r.Context().Done()
		return fmt.Errorf("list evaluations: %w", r.Context().Err())
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/evaluations", nil)
	go func() { <-started; cancel() }()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	<-done
	got := logs.String()
	if !strings.Contains(got, "client went away") || strings.Contains(got, "level=ERROR") || strings.Contains(got, "status=500") {
		t.Errorf("logged:\n%s\nwant \"client went away\", no error and no 500", got)
	}
}

// TestBearerScheme: the scheme of every bearer token the builder checks
// is matched without regard to case; another scheme is refused.
func TestBearerScheme(t *testing.T) {
	f := newGuardFixture(t, 4, time.Second)
	report := `{"current": "/nix/store/00000000000000000000000000000000-x", "result": "switched"}`
	for _, scheme := range []string{"Bearer", "bearer", "BEARER", "Basic"} {
		want := map[bool]int{true: http.StatusNotFound, false: http.StatusUnauthorized}[scheme != "Basic"]
		if resp, b := f.do(t, http.MethodPost, "/api/evaluations", scheme+" admin-secret", strings.NewReader(`{"repo": "nope"}`)); resp.StatusCode != want {
			t.Errorf("trigger with %s: %d %s, want %d", scheme, resp.StatusCode, b, want)
		}
		want = map[bool]int{true: http.StatusNoContent, false: http.StatusUnauthorized}[scheme != "Basic"]
		if resp, b := f.do(t, http.MethodPost, "/api/hosts/alpha/report", scheme+" alpha-token", strings.NewReader(report)); resp.StatusCode != want {
			t.Errorf("report with %s: %d %s, want %d", scheme, resp.StatusCode, b, want)
		}
	}
}

// TestReportResult: an agent's report must carry one of the results an
// agent reports; anything else is 400 and changes nothing.
func TestReportResult(t *testing.T) {
	f := newGuardFixture(t, 4, time.Second)
	ctx := context.Background()
	path := "/nix/store/00000000000000000000000000000000-x"
	for _, tc := range []struct {
		result string
		want   int
	}{
		{"switched", http.StatusNoContent},
		{"up-to-date", http.StatusNoContent},
		{"rolled back", http.StatusNoContent},
		{"failed", http.StatusNoContent},
		{"pwned", http.StatusBadRequest},
		{"Switched", http.StatusBadRequest},
		{"switched\n", http.StatusBadRequest},
		{"<script>alert(1)</script>", http.StatusBadRequest},
		{"", http.StatusBadRequest},
	} {
		before, err := f.State.EventsAfter(ctx, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		hostBefore, _ := f.State.Host(ctx, "alpha")
		body := fmt.Sprintf(`{"current": %q, "result": %s}`, path, strconv.Quote(tc.result))
		resp, b := f.do(t, http.MethodPost, "/api/hosts/alpha/report", "Bearer alpha-token", strings.NewReader(body))
		if resp.StatusCode != tc.want {
			t.Errorf("report %q: %d %s, want %d", tc.result, resp.StatusCode, b, tc.want)
		}
		if tc.want != http.StatusBadRequest {
			continue
		}
		after, _ := f.State.EventsAfter(ctx, 0, 1000)
		hostAfter, _ := f.State.Host(ctx, "alpha")
		if len(after) != len(before) || hostAfter.LastResult != hostBefore.LastResult || !hostAfter.LastSeen.Equal(hostBefore.LastSeen) {
			t.Errorf("refused report %q changed the state: events %d -> %d, host %+v -> %+v", tc.result, len(before), len(after), hostBefore, hostAfter)
		}
	}
}

// TestNoSniffEveryRoute walks the route table and checks that every
// answer, success or error, carries X-Content-Type-Options: nosniff.
func TestNoSniffEveryRoute(t *testing.T) {
	f := newGuardFixture(t, 64, time.Second)
	vars := strings.NewReplacer("{id:[0-9]+}", strconv.FormatInt(f.Targets["alpha@1"].ID, 10), "{host}", "alpha")
	var requests [][2]string
	err := f.s.routes().Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		methods, _ := route.GetMethods()
		path := vars.Replace(tpl)
		if strings.HasSuffix(path, "/") && path != "/" {
			path += map[bool]string{true: "nix-cache-info", false: "app.css"}[path == "/nix-cache/"]
		}
		for _, m := range methods {
			requests = append(requests, [2]string{m, path})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(requests) < 20 {
		t.Fatalf("walked only %d routes", len(requests))
	}
	requests = append(requests, [2]string{"GET", "/no/such/page"}, [2]string{"DELETE", "/api/hosts"},
		[2]string{"GET", "/api/targets/999999/log"}, [2]string{"GET", "/nix-cache/nar/a%5cb"})
	for _, rq := range requests {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, rq[0], f.srv.URL+rq[1], strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req) // streams answer headers at once
		if err != nil {
			cancel()
			t.Fatalf("%s %s: %v", rq[0], rq[1], err)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s %s: %d with X-Content-Type-Options %q, want nosniff", rq[0], rq[1], resp.StatusCode, got)
		}
		resp.Body.Close()
		cancel()
	}
}
