package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/homelab-farm/farm/internal/atomicfile"
	"github.com/homelab-farm/farm/internal/failover"
)

// Event types of the builder's log that the notifier acts on (the builder's
// pipeline and API define them).
const (
	deliveryGrace      = 2 * time.Minute
	inFlightMargin     = 5 * time.Minute // the server's clock may lag ours
	defaultPollEvery   = 5 * time.Second
	defaultMagicEvery  = 30 * time.Second
	defaultPokeTimeout = 5 * time.Second
)

// Log attribute keys.
const (
	logHost  = "host"
	logEvent = "event"
	logTitle = "title"
	logErr   = "err"
)

// Options wire a Notifier.
type Options struct {
	Config Config // validated
	// BuilderURLs are the base URLs of the builder's instances (one farm):
	// the events are followed on one and, when it fails, on the next
	// (Follower). The first is the base of the links in notifications
	// unless Config.PublicURL says otherwise.
	BuilderURLs []string
	StateDir    string
	// Publisher delivers notifications; nil: none are sent (pokes and
	// wakes still are). If it is also a Ledger (Ntfy is), a notification
	// whose outcome a crash lost is looked up there before it is
	// published again: see Handle.
	Publisher Publisher
	// PokeToken authenticates pokes to agents; empty: agents are not poked.
	PokeToken string
	// HTTP makes pokes and follows the event stream; nil: a default client.
	HTTP *http.Client
	// Wake sends a magic packet; nil: Wake.
	Wake func(ctx context.Context, mac net.HardwareAddr, addr string) error
	// PollEvery and MagicEvery pace a wake: how often the host is poked
	// and how often the magic packet is sent again. 0: 5 s and 30 s.
	PollEvery, MagicEvery time.Duration
	// RetryWait is the Follower's (0: one second): the first pause before
	// an event is handed on again; it doubles up to 30 s.
	RetryWait time.Duration
	// PermanentTries and TransientTries bound how often one event's
	// notification is tried before it is given up (logged, counted in
	// Metrics) and the events after it go on: when the publisher refuses
	// it for good (ErrPermanent) and when it fails otherwise. 0: 3 and 8.
	PermanentTries, TransientTries int
	// Metrics counts what could not be done; nil: nothing is counted.
	Metrics Metrics
	Log     *slog.Logger
}

// Metrics counts what the notifier gave up on. Its methods may be called
// from several goroutines at once.
type Metrics interface {
	// NotificationSkipped is called when an event's notification is given
	// up after its bounded tries; reason is "permanent" (the publisher
	// refuses it) or "transient" (it kept failing).
	NotificationSkipped(reason string)
	// StreamError is called when the event stream breaks the protocol;
	// kind is "oversize_line" (a line longer than the Follower's limit).
	StreamError(kind string)
}

// Reasons and kinds passed to Metrics.
const (
	SkippedPermanent  = "permanent"
	SkippedTransient  = "transient"
	StreamOversize    = "oversize_line"
	defaultPermTries  = 3
	defaultTransTries = 8
)

type noMetrics struct{}

func (noMetrics) NotificationSkipped(string) {}
func (noMetrics) StreamError(string)         {}

// state is what the notifier keeps on disk, written atomically after each
// event: the cursor and what it needs to notice a recovery.
type state struct {
	// Cursor is the id of the last event fully handled.
	Cursor int64 `json:"cursor"`
	// Failing maps what is broken ("build:<repo>/<branch>/<host>",
	// "eval:<repo>/<branch>", "deploy:<host>") to why.
	Failing map[string]string `json:"failing,omitempty"`
	// Evals are the running evaluations, for the repository and branch
	// their targets' events do not carry.
	Evals map[int64]evalInfo `json:"evals,omitempty"`
	// Waking maps the hosts told of a new desired closure (poked, woken)
	// to its seq until they report it: a restart takes the wakes up again.
	Waking map[string]uint64 `json:"waking,omitempty"`
	// InFlight is the event whose notification was being published when
	// this state was written; the rest of the state is from before that
	// event. It is cleared when the event is recorded as handled.
	InFlight *inFlight `json:"in_flight,omitempty"`
}

// inFlight is a publish whose outcome is not on disk yet.
type inFlight struct {
	Event   int64     `json:"event"`
	Started time.Time `json:"started"` // when the first attempt began
}

type evalInfo struct {
	Repo   string `json:"repo"`
	Branch string `json:"branch"`
	Commit string `json:"commit"`
}

const stateFile = "notifier.json"

// Notifier handles the builder's events. Handle must not be called
// concurrently with itself; Run calls it in order.
type Notifier struct {
	o     Options
	log   *slog.Logger
	rules rules

	mu       sync.Mutex
	st       state
	waking   map[string]uint64 // host → newest desired seq being woken for
	reported map[string]uint64 // host → seq of its last report
	wakers   sync.WaitGroup
	// unsure is the publish a previous process left in flight (nil:
	// none): it may have been delivered. pending is this process's
	// publish in progress. Only Handle uses them.
	unsure, pending *inFlight
	// tries counts the failed notifications of event triesOf; only Handle
	// uses them.
	triesOf int64
	tries   int
}

// New loads the notifier's state from o.StateDir.
func New(o Options) (*Notifier, error) {
	if o.StateDir == "" {
		return nil, errors.New("notifier: no state directory")
	}
	if _, err := failover.New(o.BuilderURLs); err != nil {
		return nil, fmt.Errorf("notifier: builder URLs: %w", err)
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{}
	}
	if o.Wake == nil {
		o.Wake = Wake
	}
	if o.PollEvery <= 0 {
		o.PollEvery = defaultPollEvery
	}
	if o.MagicEvery <= 0 {
		o.MagicEvery = defaultMagicEvery
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.PermanentTries <= 0 {
		o.PermanentTries = defaultPermTries
	}
	if o.TransientTries <= 0 {
		o.TransientTries = defaultTransTries
	}
	if o.Metrics == nil {
		o.Metrics = noMetrics{}
	}
	n := &Notifier{o: o, log: o.Log, rules: newRules(o.Config, o.BuilderURLs[0], o.PokeToken), waking: map[string]uint64{}, reported: map[string]uint64{}}
	b, err := os.ReadFile(filepath.Join(o.StateDir, stateFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read notifier state: %w", err)
	default:
		if err := json.Unmarshal(b, &n.st); err != nil {
			return nil, fmt.Errorf("parse notifier state: %w", err)
		}
	}
	if f := n.st.InFlight; f != nil && f.Event > n.st.Cursor {
		n.unsure = f
		n.log.Info("a notification was in flight when the notifier stopped", logEvent, f.Event, "started", f.Started)
	}
	return n, nil
}

// Cursor is the id of the last event handled.
func (n *Notifier) Cursor() int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.st.Cursor
}

// Run follows the builder's events from the persisted cursor until ctx is
// done, then waits for the wakes it started to stop.
func (n *Notifier) Run(ctx context.Context) error {
	f := &Follower{BuilderURLs: n.o.BuilderURLs, Client: n.o.HTTP, RetryWait: n.o.RetryWait, Metrics: n.o.Metrics, Log: n.log}
	n.mu.Lock()
	pending := maps.Clone(n.st.Waking)
	n.mu.Unlock()
	for host, seq := range pending {
		n.log.Info("taking up a wake", logHost, host, "seq", seq)
		n.startWake(ctx, host, seq)
	}
	n.log.Info("following events", "after", n.Cursor())
	err := f.Follow(ctx, n.Cursor(), n.Handle)
	n.wakers.Wait()
	return err
}

// Handle acts on one event and then records it as handled. An error means
// nothing was recorded: the event is to be handled again.
//
// Each event makes at most one notification, delivered exactly once:
//
//   - Its click link carries a marker unique to the event (the fragment
//     "farm-event-<id>"; a message without a link gets the dashboard's).
//   - Before publishing, the state on disk records the event as in flight
//     with the time the attempt started; after, the state records the
//     event as handled.
//   - A shutdown (ctx done) in the middle of a delivery finishes it under a
//     context that outlives ctx by up to two minutes, and records it.
//   - A process killed between the server's answer and the state reaching
//     disk leaves the event in flight. The next process, before
//     publishing it, asks the Publisher's Ledger (ntfy's message cache)
//     for a message with the event's marker since the attempt started
//     (less a margin for clocks): if there is one, the event is recorded
//     as delivered without a second publish.
//
// Where that cannot be known — the Publisher is no Ledger, or the lookup
// fails (a server with its cache disabled, a token that may not read) —
// the notification is published again and a warning says so: the
// guarantee falls back to at least once.
//
// A notification that keeps failing is given up after a bounded number of
// tries (Options.PermanentTries when the publisher refuses it for good,
// TransientTries otherwise), logged and counted; the event is then recorded
// as handled, so one undeliverable event never holds back the ones after it.
func (n *Notifier) Handle(ctx context.Context, ev Event) error {
	n.mu.Lock()
	if ev.ID <= n.st.Cursor {
		n.mu.Unlock()
		return nil
	}
	next, d, err := decide(n.rules, n.st, ev)
	n.mu.Unlock()
	msg := d.msg
	if err != nil {
		// An event the notifier cannot read is logged and passed over: it
		// would block the stream forever.
		n.log.Warn("unreadable event", logEvent, ev.ID, "type", ev.Type, logErr, err)
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deliveryGrace)
	defer cancel()
	if msg != nil && n.o.Publisher != nil {
		if err := n.deliver(dctx, ev.ID, *msg); err != nil && !n.giveUp(ev.ID, msg.Title, err) {
			return err
		}
	}
	next.Cursor = ev.ID
	next.InFlight = nil
	if err := saveState(n.o.StateDir, next); err != nil {
		return err
	}
	n.mu.Lock()
	n.st = next
	n.mu.Unlock()
	n.unsure, n.pending = nil, nil
	n.act(ctx, d)
	return nil
}

func (s state) clone() state {
	c := state{Cursor: s.Cursor, Failing: map[string]string{}, Evals: map[int64]evalInfo{}, Waking: map[string]uint64{}, InFlight: s.InFlight}
	maps.Copy(c.Waking, s.Waking)
	for k, v := range s.Failing {
		c.Failing[k] = v
	}
	for k, v := range s.Evals {
		c.Evals[k] = v
	}
	return c
}

func saveState(dir string, s state) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode notifier state: %w", err)
	}
	return atomicfile.Write(filepath.Join(dir, stateFile), append(b, '\n'))
}
