package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/events" {
			http.NotFound(w, r)
			return
		}
		after, _ := strconv.Atoi(r.Header.Get("Last-Event-ID"))
		w.Header().Set("Content-Type", "text/event-stream")
		for id := after + 1; id <= n; id++ {
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

// ntfyServer records the titles published to /farm.
type ntfyServer struct {
	srv    *httptest.Server
	mu     sync.Mutex
	titles []string
	auth   []string
	hook   func(count int)
}

func newNtfy(t *testing.T) *ntfyServer {
	t.Helper()
	ns := &ntfyServer{}
	ns.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/farm" {
			http.Error(w, "unexpected", http.StatusBadRequest)
			return
		}
		ns.mu.Lock()
		ns.titles = append(ns.titles, r.Header.Get("Title"))
		ns.auth = append(ns.auth, r.Header.Get("Authorization"))
		count, hook := len(ns.titles), ns.hook
		ns.mu.Unlock()
		if hook != nil {
			hook(count)
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(ns.srv.Close)
	return ns
}

func (ns *ntfyServer) got() []string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return append([]string(nil), ns.titles...)
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
	ns := newNtfy(t)
	dir := t.TempDir()
	token := filepath.Join(dir, "ntfy-token")
	if err := os.WriteFile(token, []byte("tk_very_secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var mu sync.Mutex
	var cur *exec.Cmd
	ns.hook = func(count int) {
		if count%4 == 0 {
			mu.Lock()
			_ = cur.Process.Signal(syscall.SIGTERM) // before ntfy answers
			mu.Unlock()
		}
	}
	restarts := 0
	deadline := time.Now().Add(60 * time.Second)
	for len(ns.got()) < events && time.Now().Before(deadline) {
		mu.Lock()
		cur = startNotifier(t, b.URL, ns.srv.URL, filepath.Join(dir, "state"), token, &logs)
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
	if got, want := strings.Join(ns.got(), "\n"), strings.Join(wantTitles(events), "\n"); got != want {
		t.Errorf("after %d restarts ntfy got:\n%s\nwant each once:\n%s", restarts, got, want)
	}
	if restarts < 5 {
		t.Errorf("only %d restarts", restarts)
	}
	for _, a := range ns.auth {
		if a != "Bearer tk_very_secret" {
			t.Fatalf("ntfy authorization = %q, want the token from the file", a)
		}
	}
	if strings.Contains(logs.String(), "tk_very_secret") {
		t.Error("the logs show the ntfy token")
	}
}

// TestKilled kills the notifier process with SIGKILL at moments it does not
// choose. Nothing is lost; a kill between ntfy's answer and the cursor
// reaching the disk can repeat that one notification, never more.
func TestKilled(t *testing.T) {
	const events = 60
	b := builder(t, events)
	ns := newNtfy(t)
	dir := t.TempDir()
	token := filepath.Join(dir, "ntfy-token")
	if err := os.WriteFile(token, []byte("tk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	kills := 0
	deadline := time.Now().Add(60 * time.Second)
	for len(uniq(ns.got())) < events && time.Now().Before(deadline) {
		c := startNotifier(t, b.URL, ns.srv.URL, filepath.Join(dir, "state"), token, &logs)
		before := len(ns.got())
		for len(ns.got()) < before+7 && len(uniq(ns.got())) < events && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		_ = c.Process.Kill()
		_ = c.Wait()
		kills++
	}
	got := ns.got()
	if u := uniq(got); strings.Join(u, "\n") != strings.Join(wantTitles(events), "\n") {
		t.Errorf("distinct notifications in order:\n%s\nwant:\n%s", strings.Join(u, "\n"), strings.Join(wantTitles(events), "\n"))
	}
	if dup := len(got) - len(uniq(got)); dup > kills {
		t.Errorf("%d repeated notifications after %d kills: want at most one per kill", dup, kills)
	} else {
		t.Logf("%d kills, %d notifications repeated", kills, dup)
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), append([]string{"--state-dir", dir}, tt.args...), func(string) string { return "" }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}
