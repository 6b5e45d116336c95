package notify

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/farmapi"
)

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// FuzzFollow feeds arbitrary bytes as an event stream: the follower never
// panics, hands on events in increasing id order, and each at most once.
func FuzzFollow(f *testing.F) {
	f.Add("retry: 2000\n\nid: 1\nevent: target.failed\ndata: {\"id\":1,\"type\":\"target.failed\",\"data\":{\"host\":\"a\"}}\n\n")
	f.Add("data: {\"id\":2,\"type\":\"x\"}\r\n\r\ndata: {\"id\":1}\n\n: keep-alive\n\n")
	f.Add("data: {\"id\":3,\n data: \"type\":\"x\"}\n\n")
	f.Fuzz(func(t *testing.T, stream string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		calls := 0
		// The stream once, then the builder is gone and the test is over.
		client := &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
			calls++
			if calls > 1 {
				cancel()
				return nil, errors.New("gone")
			}
			return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(stream)), Request: r}, nil
		})}
		var last int64
		fl := &Follower{BuilderURLs: []string{"http://builder.invalid"}, Client: client, RetryWait: time.Microsecond}
		_ = fl.Follow(ctx, 0, func(_ context.Context, ev Event) error {
			if ev.ID <= last {
				t.Fatalf("event %d after %d", ev.ID, last)
			}
			last = ev.ID
			return nil
		})
	})
}

// FuzzHandle feeds arbitrary event data of every type the notifier acts
// on: it never panics and always moves its cursor on.
func FuzzHandle(f *testing.F) {
	for _, typ := range []farmapi.EventType{farmapi.EvalStarted, farmapi.EvalFinished, farmapi.TargetFailed, farmapi.TargetBuilt, farmapi.HostReport, farmapi.HostDesired} {
		f.Add(string(typ), `{"eval":1,"host":"a","result":"rolled back","state":"failed","seq":2}`)
	}
	f.Add("host.report", `{"host":1}`)
	f.Add("other", `[]`)
	f.Fuzz(func(t *testing.T, typ, data string) {
		n, err := New(Options{StateDir: t.TempDir(), Publisher: &recorder{}, BuilderURLs: []string{"http://127.0.0.1:1"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Handle(context.Background(), Event{ID: 7, Type: farmapi.EventType(typ), Data: []byte(data)}); err != nil {
			t.Fatalf("Handle: %v", err)
		}
		if n.Cursor() != 7 {
			t.Fatalf("cursor %d, want 7", n.Cursor())
		}
	})
}

// FuzzHeaderValue: whatever text an event brings, what goes into a header
// is one line of printable ASCII that decodes back to at most the bound.
func FuzzHeaderValue(f *testing.F) {
	f.Add("evil\r\nX-Injected: yes")
	f.Add("café ✗\x00\x7f")
	f.Add("\xff\xfe")
	f.Fuzz(func(t *testing.T, s string) {
		v := headerValue(s, 50)
		for i := range len(v) {
			if v[i] < 0x20 || v[i] > 0x7e {
				t.Fatalf("headerValue(%q) = %q: byte %#x", s, v, v[i])
			}
		}
		dec, err := new(mime.WordDecoder).DecodeHeader(v)
		if err != nil {
			t.Fatalf("headerValue(%q) = %q does not decode: %v", s, v, err)
		}
		if n := len([]rune(dec)); n > 50 {
			t.Fatalf("headerValue(%q) decodes to %d characters, want at most 50", s, n)
		}
	})
}
