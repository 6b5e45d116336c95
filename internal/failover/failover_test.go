package failover

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// instance is one builder: it answers with status (200 when 0) and records
// the bodies it got.
type instance struct {
	srv *httptest.Server

	mu     sync.Mutex
	status int
	hang   chan struct{} // non-nil: requests wait for it to close
	bodies []string
}

func newInstance(t *testing.T) *instance {
	t.Helper()
	in := &instance{}
	in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		in.mu.Lock()
		in.bodies = append(in.bodies, string(b))
		status, hang := in.status, in.hang
		in.mu.Unlock()
		if hang != nil {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		}
		if status == 0 {
			status = http.StatusOK
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	t.Cleanup(in.srv.Close)
	return in
}

func (in *instance) got() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.bodies...)
}

func post(body string) func(string) (*http.Request, error) {
	return func(base string) (*http.Request, error) {
		return http.NewRequest(http.MethodPost, base+"/api/x", strings.NewReader(body))
	}
}

// recordPauses makes p record its pauses instead of sleeping.
func recordPauses(p *Pool) *[]time.Duration {
	var waits []time.Duration
	p.pause = func(_ context.Context, d time.Duration) bool { waits = append(waits, d); return true }
	return &waits
}

func TestDoFailsOver(t *testing.T) {
	tests := []struct {
		name string
		// breakFirst makes the first instance fail; the second answers.
		breakFirst func(*instance)
	}{
		{"connection refused", func(in *instance) { in.srv.Close() }},
		{"5xx", func(in *instance) { in.status = http.StatusServiceUnavailable }},
		{"no answer within the header timeout", func(in *instance) { in.hang = make(chan struct{}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := newInstance(t), newInstance(t)
			p, err := New([]string{a.srv.URL, b.srv.URL + "/"})
			if err != nil {
				t.Fatal(err)
			}
			p.HeaderTimeout = 200 * time.Millisecond
			waits := recordPauses(p)
			a.mu.Lock()
			tt.breakFirst(a)
			hang := a.hang
			a.mu.Unlock()
			if hang != nil {
				defer close(hang)
			}

			resp, err := p.Do(context.Background(), http.DefaultClient, post("report-1"))
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || string(body) != "/api/x" {
				t.Fatalf("Do = %s %q %v; want 200 from the second", resp.Status, body, err)
			}
			if got := b.got(); len(got) != 1 || got[0] != "report-1" {
				t.Errorf("second instance got %q, want the whole body once", got)
			}
			if p.Current() != b.srv.URL {
				t.Errorf("Current = %s, want the second, which answered", p.Current())
			}
			if len(*waits) != 1 || (*waits)[0] != 200*time.Millisecond {
				t.Errorf("pauses = %v, want one of 200ms before the move", *waits)
			}

			// The next request starts with the one that answered.
			resp, err = p.Do(context.Background(), http.DefaultClient, post("report-2"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := b.got(); len(got) != 2 || got[1] != "report-2" {
				t.Errorf("second instance got %q, want report-2 straight away", got)
			}
			if len(*waits) != 1 {
				t.Errorf("pauses = %v, want no new one", *waits)
			}
		})
	}
}

// TestDoAllFail: every URL is tried once per Do, with growing, bounded
// pauses; a 5xx on the last is handed to the caller, an error is returned.
func TestDoAllFail(t *testing.T) {
	ins := []*instance{newInstance(t), newInstance(t), newInstance(t), newInstance(t)}
	var urls []string
	for _, in := range ins {
		in.status = http.StatusBadGateway
		urls = append(urls, in.srv.URL)
	}
	p, err := New(urls)
	if err != nil {
		t.Fatal(err)
	}
	p.Backoff, p.MaxBackoff = time.Second, 3*time.Second
	waits := recordPauses(p)
	resp, err := p.Do(context.Background(), http.DefaultClient, post("x"))
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status = %d, want the last 502", resp.StatusCode)
	}
	for i, in := range ins {
		if n := len(in.got()); n != 1 {
			t.Errorf("instance %d asked %d times, want once", i, n)
		}
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}; len(*waits) != 3 || (*waits)[0] != want[0] || (*waits)[1] != want[1] || (*waits)[2] != want[2] {
		t.Errorf("pauses = %v, want %v", *waits, want)
	}
	if p.Current() != urls[0] {
		t.Errorf("Current = %s, want still the first: none answered", p.Current())
	}

	for _, in := range ins {
		in.srv.Close()
	}
	*waits = nil
	if resp, err := p.Do(context.Background(), http.DefaultClient, post("x")); err == nil {
		resp.Body.Close()
		t.Fatal("Do with every builder down: no error")
	} else if !strings.Contains(err.Error(), "none of 4 builders answered") {
		t.Errorf("error = %v, want it to say none answered", err)
	}
}

func TestDoStopsWithContext(t *testing.T) {
	a := newInstance(t)
	a.srv.Close()
	b := newInstance(t)
	p, err := New([]string{a.srv.URL, b.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.pause = func(context.Context, time.Duration) bool { cancel(); return false }
	if _, err := p.Do(ctx, http.DefaultClient, post("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Do = %v, want context.Canceled", err)
	}
	if n := len(b.got()); n != 0 {
		t.Errorf("second instance asked %d times after the context ended", n)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		urls []string
		ok   bool
	}{
		{"one", []string{"http://b:8080"}, true},
		{"two with a path", []string{"https://b1/farm", "https://b2/farm/"}, true},
		{"none", nil, false},
		{"relative", []string{"builder"}, false},
		{"other scheme", []string{"ftp://b"}, false},
		{"query", []string{"http://b/?x=1"}, false},
		{"credentials", []string{"http://u:p@b"}, false},
		{"twice", []string{"http://b/", "http://b"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.urls); (err == nil) != tt.ok {
				t.Errorf("New(%q) = %v, want ok=%v", tt.urls, err, tt.ok)
			}
		})
	}
}

func TestURLsValue(t *testing.T) {
	var u URLs
	for _, s := range []string{"http://a", " http://b , http://c,", ""} {
		if err := u.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	if got := u.String(); got != "http://a,http://b,http://c" {
		t.Errorf("URLs = %q, want three", got)
	}
}

func TestSkip(t *testing.T) {
	p, err := New([]string{"http://a", "http://b", "http://c"})
	if err != nil {
		t.Fatal(err)
	}
	p.Skip("http://b") // not the current one: nothing changes
	if p.Current() != "http://a" {
		t.Fatalf("Current = %s after skipping another, want http://a", p.Current())
	}
	for _, want := range []string{"http://b", "http://c", "http://a"} {
		p.Skip(p.Current())
		if p.Current() != want {
			t.Errorf("Current = %s, want %s", p.Current(), want)
		}
	}
}
