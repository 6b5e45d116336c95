package notify

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/homelab-farm/farm/internal/failover"
	"github.com/homelab-farm/farm/internal/farmapi"
)

// Event is one entry of the builder's event log.
type Event struct {
	ID   int64             `json:"id"`
	Time time.Time         `json:"time"`
	Type farmapi.EventType `json:"type"`
	Data json.RawMessage   `json:"data"`
}

// Follower reads the builder's event stream (GET /api/events, Server-Sent
// Events), reconnecting with Last-Event-ID after every interruption. With
// several builder instances (one farm: one event log in one global order)
// it follows one and, when that one cannot be reached, times out, answers
// 5xx or breaks off the stream, resumes on the next from the last event
// handled: nothing is lost and nothing handed on twice.
type Follower struct {
	// BuilderURLs are the base URLs of the builder's instances, tried in
	// turn (failover.Pool).
	BuilderURLs []string
	// Client makes the streaming request; it must have no overall timeout.
	// nil: a client without one.
	Client *http.Client
	// ConnectTimeout bounds the wait for a stream's headers; 0 means 30 s.
	ConnectTimeout time.Duration
	// IdleTimeout is how long a stream may stay silent before it is taken
	// for dead and followed on the next instance (the builder sends a
	// keep-alive every 15 s); 0 means one minute.
	IdleTimeout time.Duration
	// RetryWait is the pause before reconnecting or retrying a failed
	// handler; 0 means one second. It doubles up to 30 s.
	RetryWait time.Duration
	// MaxLine bounds one line of the stream and one event's data, in
	// bytes; 0 means DefaultMaxLine. A longer one is a protocol error: the
	// follower drops the connection and resumes from its cursor, and if
	// the same event is too long again it passes over it.
	MaxLine int
	// Metrics counts the protocol errors; nil: not counted.
	Metrics Metrics
	Log     *slog.Logger

	// oversize is the id of the last event found too long (-1: none yet).
	oversize int64
}

// DefaultMaxLine is the longest stream line or event a Follower takes: the
// builder's events are a few hundred bytes.
const DefaultMaxLine = 1 << 20

// errTooLong is returned for a line or an event longer than MaxLine.
var errTooLong = errors.New("event stream line too long")

// Follow calls handle for every event after the one with id after, in
// order, until ctx is done (it then returns nil). An event is handed on
// again and again until handle accepts it (returns nil): a failed delivery
// holds the stream back rather than losing an event.
func (f *Follower) Follow(ctx context.Context, after int64, handle func(context.Context, Event) error) error {
	client := f.Client
	if client == nil {
		client = &http.Client{}
	}
	log := f.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	builders, err := failover.New(f.BuilderURLs)
	if err != nil {
		return fmt.Errorf("builder URLs: %w", err)
	}
	builders.HeaderTimeout = f.connectTimeout()
	builders.Log = log
	wait := f.retryWait()
	f.oversize = -1
	for ctx.Err() == nil {
		last, err := f.stream(ctx, client, builders, after, handle)
		if last > after {
			after = last
			wait = f.retryWait()
		}
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("event stream interrupted; reconnecting", "after", after, "err", err, "wait", wait.String())
		if !sleep(ctx, wait) {
			return nil
		}
		wait = min(2*wait, 30*time.Second)
	}
	return nil
}

func (f *Follower) connectTimeout() time.Duration {
	if f.ConnectTimeout > 0 {
		return f.ConnectTimeout
	}
	return 30 * time.Second
}

func (f *Follower) idleTimeout() time.Duration {
	if f.IdleTimeout > 0 {
		return f.IdleTimeout
	}
	return time.Minute
}

func (f *Follower) retryWait() time.Duration {
	if f.RetryWait > 0 {
		return f.RetryWait
	}
	return time.Second
}

// errStreamEnded is returned when the builder closes the stream.
var errStreamEnded = errors.New("the builder closed the event stream")

// stream reads one connection's events and returns the id of the last one
// handled. A stream that breaks off or stays silent past IdleTimeout makes
// the next connection go to the next instance.
func (f *Follower) stream(ctx context.Context, client *http.Client, builders *failover.Pool, after int64, handle func(context.Context, Event) error) (int64, error) {
	// The stream has its own context, cancelled when it stays silent; the
	// handler gets ctx, so a slow delivery is never cut off.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var base string
	resp, err := builders.Do(sctx, client, func(b string) (*http.Request, error) {
		base = b
		req, err := http.NewRequest(http.MethodGet, b+"/api/events", nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "text/event-stream")
		if after > 0 {
			req.Header.Set("Last-Event-ID", strconv.FormatInt(after, 10))
		}
		return req, nil
	})
	if err != nil {
		return after, fmt.Errorf("connect to event stream: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return after, fmt.Errorf("event stream: builder %s answered %s", base, resp.Status)
	}
	idle := time.AfterFunc(f.idleTimeout(), cancel)
	defer idle.Stop()
	last, err := f.read(ctx, resp.Body, idle, after, handle)
	if ctx.Err() == nil && !errors.Is(err, errDelivery) {
		if sctx.Err() != nil {
			err = fmt.Errorf("builder %s sent nothing for %v: %w", base, f.idleTimeout(), err)
		}
		builders.Skip(base)
	}
	return last, err
}

// errDelivery marks an error of the handler, not of the stream.
var errDelivery = errors.New("delivery stopped")

// read hands on the events of one stream; idle is reset after every line
// and held while an event is handled.
func (f *Follower) read(ctx context.Context, body io.Reader, idle *time.Timer, after int64, handle func(context.Context, Event) error) (int64, error) {
	idleFor := f.idleTimeout()
	maxLine := f.maxLine()
	r := bufio.NewReaderSize(body, 64<<10)
	var data strings.Builder
	var lineID int64 // the id: line of the event being read
	for {
		line, err := readLine(r, maxLine)
		idle.Reset(idleFor)
		if errors.Is(err, errTooLong) {
			return f.tooLong(after, lineID)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return after, errStreamEnded
			}
			return after, fmt.Errorf("read event stream: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if data.Len() == 0 {
				continue
			}
			var ev Event
			err := json.Unmarshal([]byte(data.String()), &ev)
			data.Reset()
			if err != nil {
				if lineID > after {
					// Unreadable now, unreadable on every reconnect:
					// pass it over rather than stall the stream.
					if f.Log != nil {
						f.Log.Warn("unreadable event passed over", "event", lineID, "err", err)
					}
					after = lineID
					continue
				}
				return after, fmt.Errorf("parse event: %w", err)
			}
			if ev.ID <= after {
				continue // already handled
			}
			if ctx.Err() != nil {
				return after, ctx.Err() // stopping: hand on nothing more
			}
			idle.Stop()
			if err := f.deliver(ctx, ev, handle); err != nil {
				return after, fmt.Errorf("%w: %w", errDelivery, err)
			}
			idle.Reset(idleFor)
			after = ev.ID
		case strings.HasPrefix(line, "data:"):
			value := strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
			if data.Len()+1+len(value) > maxLine {
				return f.tooLong(after, lineID)
			}
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
		case strings.HasPrefix(line, "id:"):
			lineID, _ = strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "id:")), 10, 64)
		default:
			// event:, retry: and comments: the data line carries the
			// type too.
		}
	}
}

// tooLong handles a line or an event longer than MaxLine in the event with
// id lineID (0: none known) on a stream whose cursor is after: it drops the
// connection, to resume from the cursor; if the same event was too long the
// time before, the cursor passes over it. It returns stream's results.
func (f *Follower) tooLong(after, lineID int64) (int64, error) {
	if f.Metrics != nil {
		f.Metrics.StreamError(StreamOversize)
	}
	err := fmt.Errorf("event %d: %w (limit %d bytes)", lineID, errTooLong, f.maxLine())
	if lineID > after && lineID == f.oversize {
		if f.Log != nil {
			f.Log.Warn("event too long again; passed over", "event", lineID, "err", err)
		}
		return lineID, err
	}
	f.oversize = max(lineID, after)
	return after, err
}

func (f *Follower) maxLine() int {
	if f.MaxLine > 0 {
		return f.MaxLine
	}
	return DefaultMaxLine
}

// readLine reads one line, its end included, of at most max bytes; a
// longer one gives errTooLong after at most max bytes more than the
// reader's buffer are read.
func readLine(r *bufio.Reader, max int) (string, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(line)+len(frag) > max+2 { // the line end is not counted
			return "", errTooLong
		}
		line = append(line, frag...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return string(line), err
		}
	}
}

// deliver calls handle until it accepts ev or ctx is done.
func (f *Follower) deliver(ctx context.Context, ev Event, handle func(context.Context, Event) error) error {
	wait := f.retryWait()
	for {
		err := handle(ctx, ev)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if f.Log != nil {
			f.Log.Warn("event not delivered; retrying", "event", ev.ID, "type", ev.Type, "err", err, "wait", wait.String())
		}
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
