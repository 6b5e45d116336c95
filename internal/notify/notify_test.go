package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/ntfytest"
)

func TestMagicPacket(t *testing.T) {
	tests := []struct {
		mac     string
		wantErr bool
	}{
		{"a8:a1:59:3c:10:7e", false},
		{"00-11-22-33-44-55", false},
		{"00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01", true}, // 20-byte IPoIB
	}
	for _, tt := range tests {
		t.Run(tt.mac, func(t *testing.T) {
			hw, err := net.ParseMAC(tt.mac)
			if err != nil {
				t.Fatal(err)
			}
			p, err := MagicPacket(hw)
			if (err != nil) != tt.wantErr {
				t.Fatalf("MagicPacket error = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			want := append(bytes.Repeat([]byte{0xff}, 6), bytes.Repeat(hw, 16)...)
			if !bytes.Equal(p, want) || len(p) != 102 {
				t.Errorf("packet = %x, want %x", p, want)
			}
		})
	}
}

// udpListener stands in for a sleeping host's NIC: a loopback UDP socket.
func udpListener(t *testing.T) (*net.UDPConn, string) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, c.LocalAddr().String()
}

func readPacket(t *testing.T, c *net.UDPConn, d time.Duration) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 1500)
	n, _, err := c.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no magic packet arrived: %v", err)
	}
	return buf[:n]
}

func TestWakeLoopback(t *testing.T) {
	c, addr := udpListener(t)
	hw, _ := net.ParseMAC("a8:a1:59:3c:10:7e")
	if err := Wake(context.Background(), hw, addr); err != nil {
		t.Fatal(err)
	}
	want, _ := MagicPacket(hw)
	if got := readPacket(t, c, 5*time.Second); !bytes.Equal(got, want) {
		t.Errorf("received %x, want %x", got, want)
	}
}

func TestNtfyPublish(t *testing.T) {
	fn := ntfytest.New(t)
	fn.FailNext(2) // retried
	n, err := NewNtfy(fn.URL, "farm", NtfyOptions{Token: "tk_secret", WaitMin: time.Millisecond, WaitMax: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = n.Publish(context.Background(), Message{
		Title: "Build failed: malphas\n", Body: "malphas (aarch64-linux) failed: boom ✗",
		Priority: 4, Tags: []string{"rotating_light", "malphas"}, Click: "https://farm/api/targets/7/log",
	})
	if err != nil {
		t.Fatal(err)
	}
	got := fn.Messages()
	want := ntfytest.Message{ID: got[0].ID, Time: got[0].Time, Event: "message", Topic: "farm", Title: "Build failed: malphas",
		Priority: 4, Tags: []string{"rotating_light", "malphas"}, Click: "https://farm/api/targets/7/log",
		Auth: "Bearer tk_secret", Message: "malphas (aarch64-linux) failed: boom ✗"}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Errorf("ntfy got %+v, want [%+v]", got, want)
	}

	fn.FailNext(100)
	if err := n.Publish(context.Background(), Message{Title: "x"}); err == nil {
		t.Error("publish to a server that keeps failing: no error")
	}
}

func TestFollowerResumes(t *testing.T) {
	fe := newFakeEvents(t)
	for i := range 6 {
		fe.add("target.built", map[string]any{"host": fmt.Sprint("h", i)})
	}
	fe.dropAt[2] = true
	fe.dropAt[5] = true
	f := &Follower{BuilderURLs: []string{fe.srv.URL}, RetryWait: time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []int64
	failOnce := map[int64]bool{4: true}
	err := f.Follow(ctx, 1, func(_ context.Context, ev Event) error {
		if failOnce[ev.ID] {
			delete(failOnce, ev.ID)
			return errors.New("ntfy down")
		}
		got = append(got, ev.ID)
		if ev.ID == 6 {
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{2, 3, 4, 5, 6}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("handled %v, want %v", got, want)
	}
	if want := []int64{1, 2, 5}; fmt.Sprint(fe.requests) != fmt.Sprint(want) {
		t.Errorf("connections resumed after %v, want %v", fe.requests, want)
	}
}

// recorder is a Publisher that keeps what it is given.
type recorder struct {
	mu   sync.Mutex
	msgs []Message
}

func (r *recorder) Publish(_ context.Context, m Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
	return nil
}

// TestDecide feeds a history of events and checks which notifications it
// makes: failures, and recovery on the first success after a failure.
func TestDecide(t *testing.T) {
	type ev struct {
		typ  farmapi.EventType
		data map[string]any
	}
	started := func(id int, branch string) ev {
		return ev{farmapi.EvalStarted, map[string]any{"eval": id, "repo": "fleet", "branch": branch, "commit": fmt.Sprintf("%040d", id)}}
	}
	target := func(typ farmapi.EventType, eval, target int, host string) ev {
		return ev{typ, map[string]any{"eval": eval, "target": target, "host": host, "system": "x86_64-linux", "reason": "build failed: exit 1"}}
	}
	report := func(host, result, reason string, seq int) ev {
		return ev{farmapi.HostReport, map[string]any{"host": host, "current": "/nix/store/aaaa-" + host, "result": result, "reason": reason, "seq": seq}}
	}
	finished := func(id int, branch, st string, failed int) ev {
		return ev{farmapi.EvalFinished, map[string]any{"eval": id, "repo": "fleet", "branch": branch, "commit": fmt.Sprintf("%040d", id), "state": st, "failed": failed}}
	}
	tests := []struct {
		name    string
		success bool
		events  []ev
		want    []string // "title | click", the click link marked with the event
	}{
		{
			name: "build failure then recovery",
			events: []ev{
				started(1, "main"), target(farmapi.TargetFailed, 1, 11, "malphas"), target(farmapi.TargetBuilt, 1, 12, "andras"),
				finished(1, "main", "failed", 1),
				started(2, "main"), target(farmapi.TargetBuilt, 2, 21, "malphas"), target(farmapi.TargetCached, 2, 22, "andras"),
				finished(2, "main", "done", 0),
				started(3, "main"), target(farmapi.TargetCached, 3, 31, "malphas"),
			},
			want: []string{"Build failed: malphas | https://farm.example/api/targets/11/log#farm-event-2", "Build recovered: malphas | https://farm.example/#farm-event-6"},
		},
		{
			name: "a failure on another branch is not recovered by main",
			events: []ev{
				started(1, "wip"), target(farmapi.TargetFailed, 1, 11, "malphas"),
				started(2, "main"), target(farmapi.TargetBuilt, 2, 21, "malphas"),
				started(3, "wip"), target(farmapi.TargetCached, 3, 31, "malphas"),
			},
			want: []string{"Build failed: malphas | https://farm.example/api/targets/11/log#farm-event-2", "Build recovered: malphas | https://farm.example/#farm-event-6"},
		},
		{
			name: "whole evaluation failure and recovery",
			events: []ev{
				started(1, "main"), finished(1, "main", "failed", 0),
				started(2, "main"), finished(2, "main", "done", 0),
				started(3, "main"), finished(3, "main", "done", 0),
			},
			want: []string{"Evaluation failed: fleet main | https://farm.example/#farm-event-2", "Evaluation recovered: fleet main | https://farm.example/#farm-event-4"},
		},
		{
			name: "deploy rolled back once, repeated reports quiet, recovery",
			events: []ev{
				report("stolas", "switched", "", 1),
				report("stolas", "rolled back", "health check failed", 2),
				report("stolas", "rolled back", "health check failed", 2),
				report("stolas", "up-to-date", "", 3),
				report("stolas", "up-to-date", "", 3),
			},
			want: []string{"Deploy rolled back: stolas | https://farm.example/#farm-event-2", "Deploy recovered: stolas | https://farm.example/#farm-event-4"},
		},
		{
			name:    "successes when asked for",
			success: true,
			events:  []ev{report("stolas", "switched", "", 1), report("stolas", "up-to-date", "", 1)},
			want:    []string{"Deployed: stolas | https://farm.example/#farm-event-1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			cfg := Config{PublicURL: "https://farm.example", NotifySuccess: tt.success}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			n, err := New(Options{Config: cfg, BuilderURLs: []string{"http://127.0.0.1:1"}, StateDir: t.TempDir(), Publisher: rec})
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range tt.events {
				b, _ := json.Marshal(e.data)
				if err := n.Handle(context.Background(), Event{ID: int64(i + 1), Type: e.typ, Data: b}); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for _, m := range rec.msgs {
				got = append(got, m.Title+" | "+m.Click)
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("notifications:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantErr bool
		check   func(t *testing.T, c Config)
	}{
		{
			name: "as the NixOS module writes it",
			body: "[wake_on_lan]\nmalphas = \"a8:a1:59:3c:10:7e\"\n",
			check: func(t *testing.T, c Config) {
				if w := c.WakeOnLAN["malphas"]; w.Address != DefaultWakeAddress || w.hw.String() != "a8:a1:59:3c:10:7e" {
					t.Errorf("malphas = %+v", w)
				}
			},
		},
		{
			name: "tables, agents, timeout",
			body: "public_url = \"https://farm\"\nwake_timeout = \"3m\"\n[wake_on_lan.andras]\nmac = \"00:11:22:33:44:55\"\naddress = \"127.0.0.1:9\"\n[agents]\nandras = \"http://andras:7741\"\n",
			check: func(t *testing.T, c Config) {
				if c.WakeOnLAN["andras"].Address != "127.0.0.1:9" || c.Agents["andras"] != "http://andras:7741" || c.wakeTimeout != 3*time.Minute {
					t.Errorf("config = %+v", c)
				}
			},
		},
		{name: "bad MAC", body: "[wake_on_lan]\nx = \"nope\"\n", wantErr: true},
		{name: "unknown key", body: "colour = \"red\"\n", wantErr: true},
		{name: "bad agent URL", body: "[agents]\nx = \"x\"\n", wantErr: true},
		{name: "bad timeout", body: "wake_timeout = \"soon\"\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "notifier.toml")
			if err := os.WriteFile(p, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := LoadConfig(p)
			if (err != nil) != tt.wantErr {
				t.Fatalf("LoadConfig error = %v, want error %v", err, tt.wantErr)
			}
			if tt.check != nil && err == nil {
				tt.check(t, c)
			}
		})
	}
}

// TestRestartExactlyOnce stops the notifier again and again in the middle
// of a stream of events — while a notification is on its way — and starts
// a new one on the same state directory: every notification arrives once.
func TestRestartExactlyOnce(t *testing.T) {
	fe := newFakeEvents(t)
	fn := ntfytest.New(t)
	const hosts = 12
	var want []string
	for i := range hosts {
		h := fmt.Sprintf("host%02d", i)
		fe.add(farmapi.EvalStarted, map[string]any{"eval": i + 1, "repo": "fleet", "branch": "main", "commit": "abc"})
		fe.add(farmapi.TargetFailed, map[string]any{"eval": i + 1, "target": 100 + i, "host": h, "system": "x86_64-linux"})
		fe.add(farmapi.TargetBuilt, map[string]any{"eval": i + 1, "target": 200 + i, "host": "other"})
		fe.add(farmapi.HostReport, map[string]any{"host": h, "result": "rolled back", "reason": "boom", "seq": 1})
		want = append(want, "Build failed: "+h, "Deploy rolled back: "+h)
	}
	for i := range hosts {
		h := fmt.Sprintf("host%02d", i)
		fe.add(farmapi.EvalStarted, map[string]any{"eval": 100 + i, "repo": "fleet", "branch": "main", "commit": "abd"})
		fe.add(farmapi.TargetCached, map[string]any{"eval": 100 + i, "target": 300 + i, "host": h})
		fe.add(farmapi.HostReport, map[string]any{"host": h, "result": "switched", "seq": 2})
		want = append(want, "Build recovered: "+h, "Deploy recovered: "+h)
	}

	dir := t.TempDir()
	pub, err := NewNtfy(fn.URL, "farm", NtfyOptions{WaitMin: time.Millisecond, WaitMax: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var cancelRun context.CancelFunc
	var mu sync.Mutex
	count := 0
	fn.OnPublish(func(ntfytest.Message) {
		mu.Lock()
		defer mu.Unlock()
		count++
		if count%3 == 0 && cancelRun != nil {
			cancelRun() // stop while this very notification is in flight
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	restarts := 0
	for len(fn.Messages()) < len(want) && time.Now().Before(deadline) {
		n, err := New(Options{Config: Config{}, BuilderURLs: []string{fe.srv.URL}, StateDir: dir, Publisher: pub, RetryWait: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		mu.Lock()
		cancelRun = cancel
		mu.Unlock()
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(2 * time.Second): // quiet: everything delivered
			cancel()
			<-done
		}
		cancel()
		restarts++
	}
	if got := fn.Titles(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("after %d restarts ntfy got:\n%s\nwant each once, in order:\n%s", restarts, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if restarts < 5 {
		t.Errorf("only %d restarts: the test did not interrupt the stream", restarts)
	}
}

// TestWakeSleepingHost: a host with a new desired closure whose agent does
// not answer gets magic packets (on a loopback listener standing in for its
// NIC); once it runs again it is poked as woken, and the wake ends with its
// report.
func TestWakeSleepingHost(t *testing.T) {
	fe := newFakeEvents(t)
	nic, nicAddr := udpListener(t)

	// The agent's address, free for now: the host sleeps.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	agentAddr := ln.Addr().String()
	ln.Close()

	cfg := Config{
		WakeOnLAN:   map[string]WakeTarget{"malphas": {MAC: "a8:a1:59:3c:10:7e", Address: nicAddr}},
		Agents:      map[string]string{"malphas": "http://" + agentAddr},
		WakeTimeout: "20s",
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	n, err := New(Options{Config: cfg, BuilderURLs: []string{fe.srv.URL}, StateDir: t.TempDir(), Publisher: rec, PokeToken: "poke-secret",
		PollEvery: 20 * time.Millisecond, MagicEvery: 200 * time.Millisecond, RetryWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()

	fe.add(farmapi.HostDesired, map[string]any{"host": "malphas", "store_path": "/nix/store/x-malphas", "commit": "abc", "seq": 7})
	want, _ := MagicPacket(cfg.WakeOnLAN["malphas"].hw)
	if got := readPacket(t, nic, 10*time.Second); !bytes.Equal(got, want) {
		t.Fatalf("NIC got %x, want the magic packet %x", got, want)
	}

	// The host wakes: its agent takes pokes again.
	pokes := make(chan string, 10)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]bool
		_ = json.NewDecoder(r.Body).Decode(&body)
		pokes <- fmt.Sprintf("%s %s woken=%v", r.URL.Path, r.Header.Get("Authorization"), body["woken"])
		w.WriteHeader(http.StatusAccepted)
	})}
	ln, err = net.Listen("tcp", agentAddr)
	if err != nil {
		t.Fatalf("listen again on the agent's address: %v", err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	select {
	case p := <-pokes:
		if p != "/poke Bearer poke-secret woken=true" {
			t.Errorf("poke = %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the woken agent was not poked")
	}
	fe.add(farmapi.HostReport, map[string]any{"host": "malphas", "current": "/nix/store/x-malphas", "result": "switched", "seq": 7})
	testenv.Eventually(t, 10*time.Second, func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		_, busy := n.waking["malphas"]
		return !busy
	}, "the wake of malphas ends with its report")
	// Awake now: the next desired closure is a plain poke, no packet.
	for { // drop the packets sent while the host slept
		_ = nic.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, _, err := nic.ReadFromUDP(make([]byte, 1500)); err != nil {
			break
		}
	}
	fe.add(farmapi.HostDesired, map[string]any{"host": "malphas", "store_path": "/nix/store/y-malphas", "commit": "abd", "seq": 8})
	select {
	case p := <-pokes:
		if p != "/poke Bearer poke-secret woken=false" {
			t.Errorf("poke = %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the awake agent was not poked")
	}
	_ = nic.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, _, err := nic.ReadFromUDP(make([]byte, 1500)); err == nil {
		t.Error("a magic packet was sent to an awake host")
	}
	if len(rec.msgs) != 0 {
		t.Errorf("notifications: %+v, want none", rec.msgs)
	}
}

// TestWakeTimeout: a host that never answers gets magic packets until the
// wake times out, and then a person is told.
func TestWakeTimeout(t *testing.T) {
	fe := newFakeEvents(t)
	nic, nicAddr := udpListener(t)
	cfg := Config{WakeOnLAN: map[string]WakeTarget{"andras": {MAC: "00:11:22:33:44:55", Address: nicAddr}}, WakeTimeout: "300ms"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	n, err := New(Options{Config: cfg, BuilderURLs: []string{fe.srv.URL}, StateDir: t.TempDir(), Publisher: rec,
		PollEvery: 10 * time.Millisecond, MagicEvery: 100 * time.Millisecond, RetryWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()
	fe.add(farmapi.HostDesired, map[string]any{"host": "andras", "store_path": "/nix/store/x-andras", "seq": 3})
	for range 2 { // sent again while the host stays silent
		readPacket(t, nic, 5*time.Second)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.msgs) == 1 && rec.msgs[0].Title == "Host did not wake: andras"
	}, "a notification that andras did not wake")
}

// TestFollowerPassesOverGarbage: an event whose data cannot be read is
// passed over (by its id line), not retried forever.
func TestFollowerPassesOverGarbage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "id: 1\nevent: x\ndata: {\"id\":1,\"type\":\"x\"}\n\n")
		fmt.Fprint(w, "id: 2\nevent: x\ndata: {not json\n\n")
		fmt.Fprint(w, "id: 3\nevent: x\ndata: {\"id\":3,\"type\":\"x\"}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []int64
	_ = (&Follower{BuilderURLs: []string{srv.URL}}).Follow(ctx, 0, func(_ context.Context, ev Event) error {
		got = append(got, ev.ID)
		if ev.ID == 3 {
			cancel()
		}
		return nil
	})
	if fmt.Sprint(got) != "[1 3]" {
		t.Errorf("handled %v, want [1 3]", got)
	}
}

// TestWakeSurvivesRestart: a notifier stopped while a host sleeps takes the
// wake up again when it starts, and drops it once the host reports.
func TestWakeSurvivesRestart(t *testing.T) {
	fe := newFakeEvents(t)
	nic, nicAddr := udpListener(t)
	cfg := Config{WakeOnLAN: map[string]WakeTarget{"andras": {MAC: "00:11:22:33:44:55", Address: nicAddr}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	start := func() (*Notifier, func()) {
		n, err := New(Options{Config: cfg, BuilderURLs: []string{fe.srv.URL}, StateDir: dir,
			PollEvery: 10 * time.Millisecond, MagicEvery: time.Hour, RetryWait: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()
		return n, func() { cancel(); <-done }
	}
	_, stop := start()
	fe.add(farmapi.HostDesired, map[string]any{"host": "andras", "store_path": "/nix/store/x-andras", "seq": 3})
	readPacket(t, nic, 5*time.Second)
	stop()

	n, stop := start()
	defer stop()
	readPacket(t, nic, 5*time.Second) // the wake, taken up again
	fe.add(farmapi.HostReport, map[string]any{"host": "andras", "current": "/nix/store/x-andras", "result": "switched", "seq": 3})
	testenv.Eventually(t, 10*time.Second, func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		_, busy := n.waking["andras"]
		return !busy && len(n.st.Waking) == 0
	}, "the wake of andras ends with its report")
}

// TestInFlightAtRestart starts a notifier on a state that a killed process
// left with event 2's notification in flight: it publishes the notification
// only if ntfy's cache holds no message with the event's marker since the
// attempt began, and falls back to publishing, with a warning, when it
// cannot tell.
func TestInFlightAtRestart(t *testing.T) {
	started := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	const click = "https://farm.example/#farm-event-2"
	tests := []struct {
		name        string
		cached      []ntfytest.Message // in ntfy's cache before the restart
		pollStatus  int                // non-zero: polls answer this
		noLedger    bool               // the publisher keeps no record
		wantPublish bool
		wantWarn    bool // at least once, said in the log
	}{
		{name: "delivered before the kill", cached: []ntfytest.Message{{Topic: "farm", Title: "Deploy rolled back: stolas", Click: click, Time: started.Unix() + 1}}},
		{name: "delivered, the server's clock a little behind", cached: []ntfytest.Message{{Topic: "farm", Click: click, Time: started.Unix() - 60}}},
		{name: "not delivered", wantPublish: true},
		{name: "only another event's message", cached: []ntfytest.Message{{Topic: "farm", Click: "https://farm.example/#farm-event-20", Time: started.Unix()}}, wantPublish: true},
		{name: "only another topic's message", cached: []ntfytest.Message{{Topic: "other", Click: click, Time: started.Unix()}}, wantPublish: true},
		{name: "the marker long before the attempt", cached: []ntfytest.Message{{Topic: "farm", Click: click, Time: started.Add(-time.Hour).Unix()}}, wantPublish: true},
		{name: "cache disabled: poll refused", pollStatus: http.StatusInternalServerError, wantPublish: true, wantWarn: true},
		{name: "token may not read", pollStatus: http.StatusForbidden, wantPublish: true, wantWarn: true},
		{name: "publisher keeps no record", noLedger: true, wantPublish: true, wantWarn: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn := ntfytest.New(t)
			for _, m := range tt.cached {
				fn.Store(m)
			}
			fn.FailPolls(tt.pollStatus)
			dir := t.TempDir()
			st := state{Cursor: 1, InFlight: &inFlight{Event: 2, Started: started}}
			if err := saveState(dir, st); err != nil {
				t.Fatal(err)
			}
			ntfy, err := NewNtfy(fn.URL, "farm", NtfyOptions{Token: "tk", RetryMax: 1, WaitMin: time.Millisecond, WaitMax: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			var pub Publisher = ntfy
			if tt.noLedger {
				pub = publisherOnly{ntfy}
			}
			// While a notification is published, the disk says it is in
			// flight, on the state from before its event.
			fn.OnPublish(func(ntfytest.Message) {
				var onDisk state
				b, _ := os.ReadFile(filepath.Join(dir, stateFile))
				_ = json.Unmarshal(b, &onDisk)
				if onDisk.Cursor != 1 || len(onDisk.Failing) != 0 || onDisk.InFlight == nil || onDisk.InFlight.Event != 2 || !onDisk.InFlight.Started.Equal(started) {
					t.Errorf("state on disk while publishing: cursor %d, failing %v, in flight %+v; want cursor 1, nothing failing, event 2 since %v",
						onDisk.Cursor, onDisk.Failing, onDisk.InFlight, started)
				}
			})
			var logs bytes.Buffer
			cfg := Config{PublicURL: "https://farm.example"}
			n, err := New(Options{Config: cfg, BuilderURLs: []string{"http://127.0.0.1:1"}, StateDir: dir, Publisher: pub,
				Log: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			data, _ := json.Marshal(map[string]any{"host": "stolas", "result": "rolled back", "reason": "boom", "seq": 2})
			if err := n.Handle(context.Background(), Event{ID: 2, Type: farmapi.HostReport, Data: data}); err != nil {
				t.Fatalf("Handle: %v", err)
			}

			published := len(fn.Messages()) - len(tt.cached)
			if want := map[bool]int{true: 1, false: 0}[tt.wantPublish]; published != want {
				t.Errorf("published %d messages, want %d\n%s", published, want, logs.String())
			}
			if tt.wantPublish {
				if m := fn.Messages()[len(fn.Messages())-1]; m.Click != click || m.Title != "Deploy rolled back: stolas" {
					t.Errorf("published %+v, want the rolled-back notification with click %s", m, click)
				}
			}
			if warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "at least once"); warned != tt.wantWarn {
				t.Errorf("warned of at least once: %v, want %v\n%s", warned, tt.wantWarn, logs.String())
			}
			if polls := fn.Polls(); !tt.noLedger {
				wantSince := strconv.FormatInt(started.Add(-inFlightMargin).Unix(), 10)
				if len(polls) == 0 || polls[0] != (ntfytest.Poll{Topic: "farm", Since: wantSince, Auth: "Bearer tk"}) {
					t.Errorf("polls %+v, want one of farm since %s with the token", polls, wantSince)
				}
			}
			b, err := os.ReadFile(filepath.Join(dir, stateFile))
			if err != nil {
				t.Fatal(err)
			}
			var after state
			if err := json.Unmarshal(b, &after); err != nil {
				t.Fatal(err)
			}
			if after.Cursor != 2 || after.InFlight != nil || after.Failing["deploy:stolas"] == "" {
				t.Errorf("state after: %+v, want cursor 2, nothing in flight, stolas failing", after)
			}
		})
	}
}

// publisherOnly hides every method of a Publisher but Publish.
type publisherOnly struct{ p Publisher }

func (p publisherOnly) Publish(ctx context.Context, m Message) error { return p.p.Publish(ctx, m) }

// TestLostAnswerNotRepublished: ntfy stores a notification but the answer
// never arrives (the connection drops). The publish is not blindly retried:
// the retry finds the message in ntfy's cache and publishes nothing more.
func TestLostAnswerNotRepublished(t *testing.T) {
	fn := ntfytest.New(t)
	dropped := false
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequest(r.Method, fn.URL+r.URL.RequestURI(), r.Body)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		if r.Method == http.MethodPost && !dropped {
			dropped = true // stored upstream; the client never hears
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
			return
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	defer proxy.Close()
	ntfy, err := NewNtfy(proxy.URL, "farm", NtfyOptions{RetryMax: 3, WaitMin: time.Millisecond, WaitMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Options{Config: Config{PublicURL: "https://farm.example"}, BuilderURLs: []string{"http://127.0.0.1:1"},
		StateDir: t.TempDir(), Publisher: ntfy})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(map[string]any{"host": "stolas", "result": "rolled back", "reason": "boom", "seq": 2})
	ev := Event{ID: 2, Type: farmapi.HostReport, Data: data}
	if err := n.Handle(context.Background(), ev); err == nil {
		t.Fatal("Handle succeeded though the answer was lost")
	}
	if err := n.Handle(context.Background(), ev); err != nil { // the stream's retry
		t.Fatalf("retry: %v", err)
	}
	if got := len(fn.Messages()); got != 1 {
		t.Errorf("ntfy holds %d messages, want the one", got)
	}
	if n.Cursor() != 2 {
		t.Errorf("cursor %d, want 2", n.Cursor())
	}
}
