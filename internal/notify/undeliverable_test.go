package notify

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/ntfytest"
)

// countMetrics is a Metrics that counts.
type countMetrics struct {
	mu      sync.Mutex
	skipped map[string]int
	stream  map[string]int
}

func newCountMetrics() *countMetrics {
	return &countMetrics{skipped: map[string]int{}, stream: map[string]int{}}
}

func (m *countMetrics) NotificationSkipped(reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.skipped[reason]++
}

func (m *countMetrics) StreamError(kind string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stream[kind]++
}

func (m *countMetrics) counts() (map[string]int, map[string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.skipped), maps.Clone(m.stream)
}

func TestHeaderValue(t *testing.T) {
	tests := []struct {
		name, in string
		max      int
		want     string // decoded
	}{
		{"plain", "Build failed: malphas", 200, "Build failed: malphas"},
		{"CR LF", "evil\r\nX-Injected: yes", 200, "evil X-Injected: yes"},
		{"controls and tabs", "a\x00b\tc\x7fd\u0085e", 200, "a b c d e"},
		{"edges trimmed", "  \n x \r\n", 200, "x"},
		{"unicode line separator", "a\u2028b", 200, "a b"},
		{"bounded", strings.Repeat("x", 500), 200, strings.Repeat("x", 200)},
		{"bounded, no trailing space", "abc def", 4, "abc"},
		{"non-ASCII", "Build failed: café ✗", 200, "Build failed: café ✗"},
		{"invalid UTF-8", "a\xffb", 200, "a\uFFFDb"},
		{"empty", "\r\n", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := headerValue(tt.in, tt.max)
			if !validHeaderValue(got) {
				t.Fatalf("headerValue(%q) = %q: not a valid header value", tt.in, got)
			}
			for _, r := range got {
				if r > 0x7e {
					t.Fatalf("headerValue(%q) = %q: not ASCII", tt.in, got)
				}
			}
			dec, err := new(mime.WordDecoder).DecodeHeader(got)
			if err != nil {
				t.Fatalf("decode %q: %v", got, err)
			}
			if dec != tt.want {
				t.Errorf("headerValue(%q) decodes to %q, want %q", tt.in, dec, tt.want)
			}
		})
	}
}

// TestPublishErrors: a refusal is permanent, an overload or an outage is
// not; a header nothing can make valid is refused before it is sent.
func TestPublishErrors(t *testing.T) {
	for _, tt := range []struct {
		status    int
		permanent bool
	}{
		{http.StatusBadRequest, true},
		{http.StatusForbidden, true},
		{http.StatusRequestEntityTooLarge, true},
		{http.StatusRequestTimeout, false},
		{http.StatusTooManyRequests, false},
		{http.StatusServiceUnavailable, false},
	} {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			fn := ntfytest.New(t)
			fn.Refuse(func(ntfytest.Message) int { return tt.status })
			n, err := NewNtfy(fn.URL, "farm", NtfyOptions{RetryMax: 1, WaitMin: time.Millisecond, WaitMax: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			err = n.Publish(context.Background(), Message{Title: "x"})
			if err == nil || errors.Is(err, ErrPermanent) != tt.permanent {
				t.Errorf("Publish = %v, want an error, permanent %v", err, tt.permanent)
			}
		})
	}
	fn := ntfytest.New(t)
	n, err := NewNtfy(fn.URL, "farm", NtfyOptions{Token: "tk\nX-Evil: 1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Publish(context.Background(), Message{Title: "x"}); !errors.Is(err, ErrPermanent) {
		t.Errorf("Publish with a token holding a line break = %v, want ErrPermanent", err)
	}
	if len(fn.Messages()) != 0 {
		t.Error("the request went out")
	}
}

// TestUndeliverableEventSkipped: an event whose host name holds CR/LF is
// notified with its header values sanitized, an event ntfy refuses (400)
// is tried a bounded number of times, logged, counted and passed over; the
// events after them are notified and the host after them is poked at once.
func TestUndeliverableEventSkipped(t *testing.T) {
	fe := newFakeEvents(t)
	fn := ntfytest.New(t)
	var mu sync.Mutex
	refused := 0
	fn.Refuse(func(m ntfytest.Message) int {
		if strings.Contains(m.Title, "refused") {
			mu.Lock()
			defer mu.Unlock()
			refused++
			return http.StatusBadRequest
		}
		return 0
	})
	pokes := make(chan string, 10)
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pokes <- r.URL.Path
		w.WriteHeader(http.StatusAccepted)
	}))
	defer agent.Close()
	cfg := Config{PublicURL: "https://farm.example", Agents: map[string]string{"malphas": agent.URL}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	pub, err := NewNtfy(fn.URL, "farm", NtfyOptions{WaitMin: time.Millisecond, WaitMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	metrics := newCountMetrics()
	n, err := New(Options{Config: cfg, BuilderURLs: []string{fe.srv.URL}, StateDir: t.TempDir(), Publisher: pub, PokeToken: "tk",
		RetryWait: time.Millisecond, Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	fe.add(farmapi.EvalStarted, map[string]any{"eval": 1, "repo": "fleet", "branch": "main", "commit": "abc"})
	fe.add(farmapi.TargetFailed, map[string]any{"eval": 1, "target": 5, "host": "evil\r\nX-Injected: yes", "system": "x86_64-linux"})
	fe.add(farmapi.HostReport, map[string]any{"host": "refused", "result": "rolled back", "reason": "boom", "seq": 1})
	fe.add(farmapi.HostDesired, map[string]any{"host": "malphas", "store_path": "/nix/store/x-malphas", "seq": 2})
	last := fe.add(farmapi.HostReport, map[string]any{"host": "stolas", "result": "rolled back", "reason": "boom", "seq": 1})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testenv.Eventually(t, 10*time.Second, func() error {
		if c := n.Cursor(); c < last {
			return fmt.Errorf("cursor %d, want %d: the stream is held back; ntfy got %q", c, last, fn.Titles())
		}
		return nil
	}, "the notifier passes the undeliverable event")
	select {
	case p := <-pokes:
		if p != "/poke" {
			t.Errorf("poke path %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the host after the bad events was not poked")
	}
	msgs := fn.Messages()
	if got, want := fn.Titles(), []string{"Build failed: evil X-Injected: yes", "Deploy rolled back: stolas"}; !slices.Equal(got, want) {
		t.Fatalf("ntfy got %q, want %q", got, want)
	}
	if got, want := msgs[0].Tags, []string{"rotating_light", "evil X-Injected: yes"}; !slices.Equal(got, want) {
		t.Errorf("tags %q, want %q", got, want)
	}
	mu.Lock()
	if refused != defaultPermTries {
		t.Errorf("the refused notification was tried %d times, want %d", refused, defaultPermTries)
	}
	mu.Unlock()
	if skipped, _ := metrics.counts(); skipped[SkippedPermanent] != 1 || skipped[SkippedTransient] != 0 {
		t.Errorf("skipped notifications counted %v, want one permanent", skipped)
	}
}

// TestTransientFailureBounded: a notification that keeps failing with 503
// is tried TransientTries times (with the follower's backoff) and then
// given up and counted; the next event is notified.
func TestTransientFailureBounded(t *testing.T) {
	fe := newFakeEvents(t)
	fn := ntfytest.New(t)
	var mu sync.Mutex
	tries := 0
	fn.Refuse(func(m ntfytest.Message) int {
		if strings.Contains(m.Title, "flaky") {
			mu.Lock()
			defer mu.Unlock()
			tries++
			return http.StatusServiceUnavailable
		}
		return 0
	})
	pub, err := NewNtfy(fn.URL, "farm", NtfyOptions{RetryMax: 1, WaitMin: time.Millisecond, WaitMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	metrics := newCountMetrics()
	n, err := New(Options{BuilderURLs: []string{fe.srv.URL}, StateDir: t.TempDir(), Publisher: pub, RetryWait: time.Millisecond,
		TransientTries: 4, Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	fe.add(farmapi.HostReport, map[string]any{"host": "flaky", "result": "rolled back", "reason": "boom", "seq": 1})
	last := fe.add(farmapi.HostReport, map[string]any{"host": "stolas", "result": "rolled back", "reason": "boom", "seq": 1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testenv.Eventually(t, 10*time.Second, func() bool { return n.Cursor() >= last }, "the notifier reaches event %d", last)
	if got := fn.Titles(); !slices.Equal(got, []string{"Deploy rolled back: stolas"}) {
		t.Fatalf("ntfy got %q, want the next event's notification", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if tries != 4*2 { // 4 notifier tries, each a publish and one retry of the client
		t.Errorf("publishes of the failing notification: %d, want 8", tries)
	}
	if skipped, _ := metrics.counts(); skipped[SkippedTransient] != 1 {
		t.Errorf("skipped notifications counted %v, want one transient", skipped)
	}
}
