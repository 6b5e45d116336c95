package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/homelab-farm/farm/internal/httpsafe"
	"github.com/homelab-farm/farm/internal/server/httperr"
	"github.com/homelab-farm/farm/internal/state"
)

// targetLog sends a target's build log. With ?follow=1 it keeps sending
// what the build writes until the build ends.
func (s *Server) targetLog(w http.ResponseWriter, r *http.Request) error {
	t, err := s.targetFrom(r)
	if err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(s.logDir, strconv.FormatInt(t.ID, 10)+".log"))
	if errors.Is(err, os.ErrNotExist) {
		if t.State == state.TargetFailed && t.Reason != "" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(w, t.Reason) // an evaluation failure has no build log
			return nil
		}
		return httperr.ErrNoBuildLog
	}
	if err != nil {
		return err
	}
	defer f.Close()
	follow := r.URL.Query().Get("follow") == "1"
	if follow {
		release, err := openStream(s.streams)
		if err != nil {
			return err
		}
		defer release()
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	sw := httpsafe.NewWriter(w, s.stall)
	if !follow {
		_, err := io.Copy(sw, f)
		return err
	}
	ctx := r.Context()
	for {
		if _, err := io.Copy(sw, f); err != nil {
			return err // a client gone or stalled past the deadline
		}
		if err := sw.Flush(); err != nil {
			return err
		}
		cur, err := s.state.Target(ctx, t.ID)
		if err != nil || (cur.State != state.TargetBuilding && cur.State != state.TargetPending) {
			_, err := io.Copy(sw, f) // what was written before the state changed
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// openStream takes one of the stream slots for a long-lived answer; the
// caller defers release. nil slots: no limit.
func openStream(slots *httpsafe.Slots) (release func(), err error) {
	if slots == nil {
		return func() {}, nil
	}
	release, ok := slots.TryTake()
	if !ok {
		return nil, httperr.ErrStreamsBusy
	}
	return release, nil
}
