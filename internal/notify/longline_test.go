package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// repeatReader is an endless run of one byte.
type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// countingBody counts the bytes read from it.
type countingBody struct {
	r    io.Reader
	mu   *sync.Mutex
	read *int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.mu.Lock()
	*c.read += int64(n)
	c.mu.Unlock()
	return n, err
}

func (c countingBody) Close() error { return nil }

// TestFollowerLongLine: a builder that sends a 64 MiB line (event 2) makes
// the follower read no more than its limit of it and drop the connection;
// when the same event is too long again it is passed over and event 3 is
// handed on. The stream's bytes are generated as they are read: what the
// follower reads is what it would hold.
func TestFollowerLongLine(t *testing.T) {
	const huge = 64 << 20
	event := func(id int) string {
		return fmt.Sprintf("id: %d\nevent: x\ndata: {\"id\":%d,\"type\":\"x\"}\n\n", id, id)
	}
	var mu sync.Mutex
	var reads []int64 // bytes read of each connection
	var resumed []string
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		after, _ := strconv.Atoi(r.Header.Get("Last-Event-ID"))
		var body io.Reader
		switch {
		case after < 2:
			var head strings.Builder
			for id := after + 1; id < 2; id++ {
				head.WriteString(event(id))
			}
			head.WriteString("id: 2\nevent: x\ndata: {\"id\":2,\"type\":\"x\",\"data\":\"")
			body = io.MultiReader(strings.NewReader(head.String()), io.LimitReader(repeatReader('x'), huge),
				strings.NewReader("\"}\n\n"+event(3)))
		default:
			body = strings.NewReader(event(3))
		}
		mu.Lock()
		defer mu.Unlock()
		resumed = append(resumed, r.Header.Get("Last-Event-ID"))
		reads = append(reads, 0)
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{},
			Body: countingBody{r: body, mu: &mu, read: &reads[len(reads)-1]}, Request: r}, nil
	})}
	metrics := newCountMetrics()
	f := &Follower{BuilderURLs: []string{"http://builder.invalid"}, Client: client, RetryWait: time.Millisecond, Metrics: metrics}
	var got []int64
	_ = f.Follow(ctx, 0, func(_ context.Context, ev Event) error {
		got = append(got, ev.ID)
		if ev.ID == 3 {
			cancel()
		}
		return nil
	})
	if fmt.Sprint(got) != "[1 3]" {
		t.Errorf("handled %v, want [1 3]", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"", "1", "2"}; fmt.Sprint(resumed) != fmt.Sprint(want) {
		t.Errorf("connections resumed after %q, want %q (once again from the cursor, then past event 2)", resumed, want)
	}
	for i, n := range reads {
		if n > DefaultMaxLine+256<<10 {
			t.Errorf("connection %d: read %d bytes, want at most about the %d-byte limit", i, n, DefaultMaxLine)
		}
	}
	if _, stream := metrics.counts(); stream[StreamOversize] != 2 {
		t.Errorf("stream errors counted %v, want 2 oversize lines", stream)
	}
}

// TestFollowerLongEvent: an event whose data lines are each short but add
// up to more than the limit is as too long as one long line.
func TestFollowerLongEvent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		var b strings.Builder
		if r.Header.Get("Last-Event-ID") == "" {
			b.WriteString("id: 1\nevent: x\n")
			for range 100 {
				b.WriteString("data: " + strings.Repeat("y", 1000) + "\n")
			}
			b.WriteString("\n")
		}
		b.WriteString("id: 2\nevent: x\ndata: {\"id\":2,\"type\":\"x\"}\n\n")
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(b.String())), Request: r}, nil
	})}
	f := &Follower{BuilderURLs: []string{"http://builder.invalid"}, Client: client, RetryWait: time.Millisecond, MaxLine: 10 << 10}
	var got []int64
	_ = f.Follow(ctx, 0, func(_ context.Context, ev Event) error {
		got = append(got, ev.ID)
		cancel()
		return nil
	})
	if fmt.Sprint(got) != "[2]" {
		t.Errorf("handled %v, want [2]", got)
	}
}

// TestPublishedBoundedAnswer: a poll answer that goes on and on (64 MiB of
// messages, the marker at the end) is read only up to a bound and then
// answers an error, so the caller falls back to publishing again.
func TestPublishedBoundedAnswer(t *testing.T) {
	n, err := NewNtfy("http://ntfy.invalid", "farm", NtfyOptions{RetryMax: 1, WaitMin: time.Millisecond, WaitMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var read int64
	line := `{"id":"x","event":"message","topic":"farm","message":"` + strings.Repeat("m", 1000) + `","click":"https://farm/#other"}` + "\n"
	n.http.HTTPClient.Transport = roundTripper(func(r *http.Request) (*http.Response, error) {
		many := io.LimitReader(&repeatString{s: line}, int64(len(line))*(64<<20/int64(len(line))))
		body := io.MultiReader(many, strings.NewReader(`{"event":"message","click":"https://farm/#farm-event-9"}`+"\n"))
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: countingBody{r: body, mu: &mu, read: &read}, Request: r}, nil
	})
	found, err := n.Published(context.Background(), "farm-event-9", time.Now())
	if !errors.Is(err, errPollTooLong) {
		t.Fatalf("Published = %v, nil; want an error for an answer past the bound", found)
	}
	mu.Lock()
	defer mu.Unlock()
	if read > maxPollBytes+2<<20 {
		t.Errorf("read %d bytes of the answer, want at most about %d", read, maxPollBytes)
	}
}

// repeatString is an endless repetition of s.
type repeatString struct {
	s   string
	off int
}

func (r *repeatString) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.s[r.off:])
		n += c
		r.off = (r.off + c) % len(r.s)
	}
	return n, nil
}
