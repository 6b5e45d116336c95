package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/homelab-farm/farm/internal/httpsafe"
	"github.com/homelab-farm/farm/internal/server/httperr"
	"github.com/homelab-farm/farm/internal/state"
)

// keepAlive is how often an idle event stream gets a comment line, so that
// proxies and clients see the connection is alive.
const keepAlive = 15 * time.Second

// eventStream streams the event log as Server-Sent Events, starting after the
// Last-Event-ID header (or ?after=N): a client that reconnects with the
// last id it saw misses nothing and gets nothing twice.
func (s *Server) eventStream(w http.ResponseWriter, r *http.Request) error {
	after, err := lastEventID(r)
	if err != nil {
		return httperr.ErrBadLastEventID.Wrap(err)
	}
	release, err := openStream(s.streams)
	if err != nil {
		return err
	}
	defer release()
	sw := httpsafe.NewWriter(w, s.stall)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(sw, "retry: 2000\n\n"); err != nil {
		return err
	}
	if err := sw.Flush(); err != nil {
		return err
	}
	ctx := r.Context()
	for {
		changed := s.state.Changed() // before reading, so no append is missed
		evs, err := s.state.EventsAfter(ctx, after, 500)
		if err != nil {
			return nil // the stream has started: nothing more to tell the client
		}
		for _, ev := range evs {
			if _, err := fmt.Fprintf(sw, "id: %d\nevent: %s\ndata: %s\n\n", ev.ID, ev.Type, eventJSON(ev)); err != nil {
				return err // a client gone or stalled past the deadline
			}
			after = ev.ID
		}
		if len(evs) > 0 {
			if err := sw.Flush(); err != nil {
				return err
			}
			if len(evs) == 500 {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-time.After(keepAlive):
			if _, err := io.WriteString(sw, ": keep-alive\n\n"); err != nil {
				return err
			}
			if err := sw.Flush(); err != nil {
				return err
			}
		}
	}
}

func lastEventID(r *http.Request) (int64, error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("after")
	}
	if v == "" {
		return 0, nil
	}
	return strconv.ParseInt(v, 10, 64)
}

func eventJSON(ev state.Event) []byte {
	b, _ := json.Marshal(struct {
		ID   int64           `json:"id"`
		Time time.Time       `json:"time"`
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}{ev.ID, ev.Time, ev.Type, ev.Data})
	return b
}
