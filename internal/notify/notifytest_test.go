package notify

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/farmapi"
)

// fakeEvents is a builder's event stream: GET /api/events with
// Last-Event-ID resume, as the builder serves it.
type fakeEvents struct {
	srv *httptest.Server

	mu       sync.Mutex
	events   []Event
	changed  chan struct{}
	dropAt   map[int64]bool // end the connection right after sending these ids
	requests []int64        // Last-Event-ID of each connection
}

func newFakeEvents(t *testing.T) *fakeEvents {
	t.Helper()
	fe := &fakeEvents{changed: make(chan struct{}), dropAt: map[int64]bool{}}
	fe.srv = httptest.NewServer(http.HandlerFunc(fe.serve))
	t.Cleanup(fe.srv.Close)
	return fe
}

// add appends an event of type typ with data and returns its id.
func (fe *fakeEvents) add(typ farmapi.EventType, data map[string]any) int64 {
	b, _ := json.Marshal(data)
	fe.mu.Lock()
	defer fe.mu.Unlock()
	id := int64(len(fe.events) + 1)
	fe.events = append(fe.events, Event{ID: id, Time: time.Now().UTC(), Type: typ, Data: b})
	close(fe.changed)
	fe.changed = make(chan struct{})
	return id
}

func (fe *fakeEvents) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/events" {
		http.NotFound(w, r)
		return
	}
	after, _ := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64)
	fe.mu.Lock()
	fe.requests = append(fe.requests, after)
	fe.mu.Unlock()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n\n: hello\n\n")
	w.(http.Flusher).Flush()
	for {
		fe.mu.Lock()
		changed := fe.changed
		pending := append([]Event(nil), fe.events[min(int(after), len(fe.events)):]...)
		fe.mu.Unlock()
		for _, ev := range pending {
			b, _ := json.Marshal(ev)
			fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.ID, ev.Type, b)
			w.(http.Flusher).Flush()
			after = ev.ID
			fe.mu.Lock()
			drop := fe.dropAt[ev.ID]
			delete(fe.dropAt, ev.ID)
			fe.mu.Unlock()
			if drop {
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		}
	}
}
