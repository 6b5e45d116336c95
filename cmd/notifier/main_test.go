package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/homelab-farm/farm/internal/cli/clitest"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/ntfytest"
)

// TestMain lets the test binary run as the notifier itself, so tests can
// kill a real notifier process.
func TestMain(m *testing.M) {
	if os.Getenv("FARM_TEST_RUN_NOTIFIER") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// builder serves a fixed list of events as the builder's SSE stream does.
func builder(t *testing.T, n int) *httptest.Server {
	t.Helper()
	return builderUpTo(t, n, n, nil)
}

// builderUpTo serves the first upTo of n events, recording the
// Last-Event-ID of each connection in conns (nil: not recorded); the rest
// of the log is for another instance to serve.
func builderUpTo(t *testing.T, n, upTo int, conns chan<- string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/events" {
			http.NotFound(w, r)
			return
		}
		if conns != nil {
			conns <- r.Header.Get("Last-Event-ID")
		}
		after, _ := strconv.Atoi(r.Header.Get("Last-Event-ID"))
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for id := after + 1; id <= min(n, upTo); id++ {
			data, _ := json.Marshal(map[string]any{
				"id": id, "type": "host.report", "time": time.Now().UTC(),
				"data": map[string]any{"host": fmt.Sprintf("host%03d", id), "result": "rolled back", "reason": "health check failed", "seq": 1},
			})
			fmt.Fprintf(w, "id: %d\nevent: host.report\ndata: %s\n\n", id, data)
			w.(http.Flusher).Flush()
			time.Sleep(2 * time.Millisecond)
		}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv
}

func startNotifier(t *testing.T, builderURL, ntfyURL, stateDir, tokenFile string, stderr io.Writer) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "--builder-url", builderURL, "--state-dir", stateDir,
		"--ntfy-url", ntfyURL, "--ntfy-topic", "farm", "--ntfy-token-file", tokenFile)
	cmd.Env = append(os.Environ(), "FARM_TEST_RUN_NOTIFIER=1")
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func wantTitles(n int) []string {
	var w []string
	for id := 1; id <= n; id++ {
		w = append(w, fmt.Sprintf("Deploy rolled back: host%03d", id))
	}
	return w
}

// TestTerminatedMidDelivery stops the notifier process with SIGTERM while
// a notification is in flight, again and again: it finishes that delivery,
// records it and exits; the next process carries on. Every notification
// arrives exactly once.
func TestTerminatedMidDelivery(t *testing.T) {
	const events = 40
	b := builder(t, events)
	ns := ntfytest.New(t)
	dir := t.TempDir()
	token := filepath.Join(dir, "ntfy-token")
	if err := os.WriteFile(token, []byte("tk_very_secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var mu sync.Mutex
	var cur *exec.Cmd
	count := 0
	ns.OnPublish(func(ntfytest.Message) {
		mu.Lock()
		defer mu.Unlock()
		if count++; count%4 == 0 {
			_ = cur.Process.Signal(syscall.SIGTERM) // before ntfy answers
		}
	})
	restarts := 0
	deadline := time.Now().Add(60 * time.Second)
	for len(ns.Messages()) < events && time.Now().Before(deadline) {
		mu.Lock()
		cur = startNotifier(t, b.URL, ns.URL, filepath.Join(dir, "state"), token, &logs)
		c := cur
		mu.Unlock()
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("notifier exited: %v\n%s", err, logs.String())
			}
		case <-time.After(5 * time.Second):
			_ = c.Process.Signal(syscall.SIGTERM)
			<-done
		}
		restarts++
	}
	if got, want := strings.Join(ns.Titles(), "\n"), strings.Join(wantTitles(events), "\n"); got != want {
		t.Errorf("after %d restarts ntfy got:\n%s\nwant each once:\n%s", restarts, got, want)
	}
	if restarts < 5 {
		t.Errorf("only %d restarts", restarts)
	}
	for _, m := range ns.Messages() {
		if m.Auth != "Bearer tk_very_secret" {
			t.Fatalf("ntfy authorization = %q, want the token from the file", m.Auth)
		}
	}
	if strings.Contains(logs.String(), "tk_very_secret") {
		t.Error("the logs show the ntfy token")
	}
}

// TestBuilderFailover: the notifier process follows two builder instances
// of one farm (--builder-url A,B). A goes down in the middle of the stream;
// the notifier resumes on B after the last event it handled, and every
// notification arrives exactly once, in order.
func TestBuilderFailover(t *testing.T) {
	const events = 20
	connsA, connsB := make(chan string, 10), make(chan string, 10)
	a := builderUpTo(t, events, 10, connsA)
	b := builderUpTo(t, events, events, connsB)
	ns := ntfytest.New(t)
	dir := t.TempDir()
	token := filepath.Join(dir, "ntfy-token")
	if err := os.WriteFile(token, []byte("tk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs testenv.Buffer
	cmd := startNotifier(t, a.URL+","+b.URL, ns.URL, filepath.Join(dir, "state"), token, &logs)
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("notifier: %v\n%s", err, logs.String())
		}
	}
	defer stop()
	testenv.Eventually(t, 60*time.Second, func() bool { return len(ns.Messages()) == 10 }, "ten notifications through A")
	a.CloseClientConnections()
	a.Close()
	testenv.Eventually(t, 60*time.Second, func() bool { return len(ns.Messages()) >= events }, "the other ten through B")
	stop() // a delivery in flight finishes first: nothing comes after this
	if got, want := strings.Join(ns.Titles(), "\n"), strings.Join(wantTitles(events), "\n"); got != want {
		t.Errorf("ntfy got:\n%s\nwant each once, in order:\n%s", got, want)
	}
	if got := <-connsA; got != "" {
		t.Errorf("A's first connection resumed after %q, want the start", got)
	}
	select {
	case got := <-connsB:
		if got != "10" {
			t.Errorf("B's first connection resumed after %q, want 10", got)
		}
	default:
		t.Error("B was never connected to")
	}
}

// TestKilled kills the notifier process with SIGKILL, again and again, in
// the middle of a stream of events, and starts a new one on the same state
// directory. Every fourth notification is killed for inside ntfy's publish,
// after ntfy cached the message and before it answers: the outcome the
// notifier loses is the one a kill between ntfy's 2xx and the cursor
// reaching disk loses. Other kills fall where they fall. Every notification
// arrives exactly once, in order: no repeat, no loss.
func TestKilled(t *testing.T) {
	const events = 60
	b := builder(t, events)
	ns := ntfytest.New(t)
	dir := t.TempDir()
	token := filepath.Join(dir, "ntfy-token")
	if err := os.WriteFile(token, []byte("tk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	var logs testenv.Buffer
	var mu sync.Mutex
	var cur *exec.Cmd
	published, inPublish := 0, 0
	ns.OnPublish(func(ntfytest.Message) {
		mu.Lock()
		defer mu.Unlock()
		if published++; published%4 == 0 {
			_ = cur.Process.Kill() // the message is cached; the answer never arrives
			inPublish++
		}
	})
	kills := 0
	deadline := time.Now().Add(60 * time.Second)
	for len(ns.Messages()) < events && time.Now().Before(deadline) {
		mu.Lock()
		cur = startNotifier(t, b.URL, ns.URL, state, token, &logs)
		c := cur
		mu.Unlock()
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		// Or killed from outside after a few notifications, at a moment
		// the notifier does not choose.
		before := len(ns.Messages())
		for len(ns.Messages()) < before+3 && time.Now().Before(deadline) {
			select {
			case <-done:
			case <-time.After(time.Millisecond):
				continue
			}
			break
		}
		time.Sleep(time.Duration(kills%3) * time.Millisecond)
		_ = c.Process.Kill()
		<-done
		kills++
	}
	// One more notifier, left alone until the stream is quiet: it takes up
	// what the last kill left in flight and publishes nothing more.
	started := strings.Count(logs.String(), "following events")
	final := startNotifier(t, b.URL, ns.URL, state, token, &logs)
	// SIGTERM only once it follows (its signal handling is in place: a
	// loaded machine may take a while to start it) and the stream is quiet.
	testenv.Eventually(t, 60*time.Second, func() bool {
		return strings.Count(logs.String(), "following events") > started
	}, "the final notifier never started following")
	for quiet, n := 0, len(ns.Messages()); quiet < 5; {
		time.Sleep(200 * time.Millisecond)
		if m := len(ns.Messages()); m == n {
			quiet++
		} else {
			quiet, n = 0, m
		}
	}
	_ = final.Process.Signal(syscall.SIGTERM)
	if err := final.Wait(); err != nil {
		t.Errorf("final notifier: %v", err)
	}

	got, want := ns.Titles(), wantTitles(events)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("after %d kills ntfy got:\n%s\nwant each once, in order:\n%s", kills, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	repeats, losses := len(got)-len(uniq(got)), 0
	for _, w := range want {
		if !slices.Contains(got, w) {
			losses++
		}
	}
	recovered := strings.Count(logs.String(), "delivered before the restart; not publishing it again")
	republished := strings.Count(logs.String(), "in flight at the restart was not delivered")
	t.Logf("%d notifiers killed (%d inside a publish); in flight at a restart: %d found in ntfy's cache, %d not there and published; %d repeats, %d losses",
		kills, inPublish, recovered, republished, repeats, losses)
	if recovered < inPublish {
		t.Errorf("%d in-flight notifications found in ntfy's cache, want at least the %d killed inside a publish", recovered, inPublish)
	}
	if inPublish < 5 {
		t.Errorf("only %d kills inside a publish: the test did not exercise the recovery", inPublish)
	}
	for _, p := range ns.Polls() {
		if p.Auth != "Bearer tk" || p.Topic != "farm" {
			t.Errorf("poll %+v, want topic farm with the token", p)
		}
	}
	if strings.Contains(logs.String(), "at least once") {
		t.Errorf("the notifier fell back to at least once:\n%s", logs.String())
	}
}

func TestFlagErrors(t *testing.T) {
	dir := t.TempDir()
	badConfig := filepath.Join(dir, "bad.toml")
	_ = os.WriteFile(badConfig, []byte("[wake_on_lan]\nx = \"nope\"\n"), 0o600)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no builder", nil, "--builder-url"},
		{"topic without server", []string{"--builder-url", "http://b", "--ntfy-topic", "t"}, "go together"},
		{"missing token file", []string{"--builder-url", "http://b", "--ntfy-url", "http://n", "--ntfy-topic", "t", "--ntfy-token-file", dir + "/nope"}, "read ntfy token"},
		{"bad config", []string{"--builder-url", "http://b", "--config", badConfig}, "MAC"},
		{"stray argument", []string{"--builder-url", "http://b", "x"}, "unexpected arguments"},
		{"a relative second builder", []string{"--builder-url", "http://b1,b2"}, "--builder-url"},
		{"one builder twice", []string{"--builder-url", "http://b1", "--builder-url", "http://b1/"}, "given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), append([]string{"--state-dir", dir}, tt.args...), func(string) string { return "" }, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func uniq(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// The schema the NixOS module is generated from is the one the program has.
func TestFlagsJSON(t *testing.T) {
	clitest.CheckFlagsJSON(t, run, nil, "../../nix/services/flags/notifier.json")
}
