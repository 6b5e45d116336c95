package farm

import (
	"context"
	"log/slog"

	"github.com/homelab-farm/farm/internal/state"
)

// eventWriter appends events to the event log in the background, for
// handlers that must not wait for a second fsync (a webhook's 202 waits
// only for the queue). It implements server.EventRecorder.
type eventWriter struct {
	state *state.Store
	log   *slog.Logger
	later chan laterEvent
}

type laterEvent struct {
	typ  string
	data any
}

func newEventWriter(st *state.Store, log *slog.Logger) *eventWriter {
	return &eventWriter{state: st, log: log, later: make(chan laterEvent, 4096)}
}

// RecordLater queues an event for the event log without waiting for it to
// be written; when the backlog is full the event is dropped and logged.
func (w *eventWriter) RecordLater(typ string, data any) {
	select {
	case w.later <- laterEvent{typ, data}:
	default:
		w.log.Warn("event backlog full; event not recorded", "type", typ)
	}
}

// run appends the events of RecordLater until ctx ends, then what is
// left. Events that arrive together are written in one transaction, so
// the log keeps up with any rate of webhooks.
func (w *eventWriter) run(ctx context.Context) {
	batch := make([]state.NewEvent, 0, 256)
	flush := func() {
		if err := w.state.AppendAll(context.WithoutCancel(ctx), batch); err != nil {
			w.log.Error("record events", "count", len(batch), logErr, err)
		}
		batch = batch[:0]
	}
	take := func(ev laterEvent) { batch = append(batch, state.NewEvent{Type: ev.typ, Data: ev.data}) }
	for {
		select {
		case ev := <-w.later:
			take(ev)
		case <-ctx.Done():
			for {
				select {
				case ev := <-w.later:
					take(ev)
				default:
					flush()
					return
				}
			}
		}
	drain:
		for len(batch) < cap(batch) {
			select {
			case ev := <-w.later:
				take(ev)
			default:
				break drain
			}
		}
		flush()
	}
}
