package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/homelab-farm/farm/internal/atomicfile"
)

// Event types of the builder's log that the notifier acts on (the builder's
// pipeline and API define them).
const (
	EventEvalStarted   = "evaluation.started"
	EventEvalFinished  = "evaluation.finished"
	EventTargetBuilt   = "target.built"
	EventTargetCached  = "target.cached"
	EventTargetFailed  = "target.failed"
	EventHostDesired   = "host.desired"
	EventHostReport    = "host.report"
	reportRolledBack   = "rolled back"
	reportFailed       = "failed"
	reportSwitched     = "switched"
	reportUpToDate     = "up-to-date"
	evalStateFailed    = "failed"
	evalStateDone      = "done"
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
	Config     Config // validated
	BuilderURL string
	StateDir   string
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
	o   Options
	log *slog.Logger

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
	n := &Notifier{o: o, log: o.Log, waking: map[string]uint64{}, reported: map[string]uint64{}}
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
	f := &Follower{BuilderURL: n.o.BuilderURL, Client: n.o.HTTP, RetryWait: n.o.RetryWait, Metrics: n.o.Metrics, Log: n.log}
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
	next := n.st.clone()
	n.mu.Unlock()

	msg, err := n.decide(&next, ev)
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
	n.act(ctx, ev)
	return nil
}

// giveUp counts a failed notification of event id and reports whether its
// tries are used up: then the failure is logged and counted, and the event
// is to be recorded as handled without it, so that the events after it
// (their notifications, pokes and wakes) are not held back.
func (n *Notifier) giveUp(id int64, title string, err error) bool {
	if n.triesOf != id {
		n.triesOf, n.tries = id, 0
	}
	n.tries++
	reason, limit := SkippedTransient, n.o.TransientTries
	if errors.Is(err, ErrPermanent) {
		reason, limit = SkippedPermanent, n.o.PermanentTries
	}
	if n.tries < limit {
		return false
	}
	n.log.Error("notification given up", logEvent, id, logTitle, title, "tries", n.tries, "reason", reason, logErr, err)
	n.o.Metrics.NotificationSkipped(reason)
	n.triesOf, n.tries = 0, 0
	return true
}

// deliver publishes msg, the notification of event id, exactly once if the
// Publisher is a Ledger that answers (see Handle).
func (n *Notifier) deliver(ctx context.Context, id int64, msg Message) error {
	marker := eventMarker(id)
	click := msg.Click
	if click == "" {
		click = n.link("/")
	}
	msg.Click = withFragment(click, marker)
	log := n.log.With(logEvent, id, logTitle, msg.Title)

	started := time.Now()
	if p := n.pending; p != nil && p.Event == id {
		started = p.Started // a failed attempt, retried: keep the first start
	}
	if u := n.unsure; u != nil && u.Event == id {
		started = u.Started
		ledger, ok := n.o.Publisher.(Ledger)
		if !ok {
			n.unsure = nil
			log.Warn("publishing again a notification that may have been delivered: the publisher keeps no record (at least once)")
		} else {
			found, err := ledger.Published(ctx, marker, u.Started.Add(-inFlightMargin))
			if err == nil {
				n.unsure = nil // known: from here it is this process's publish
			}
			switch {
			case err != nil:
				// Kept unsure: should this publish fail too, its retry
				// asks again.
				log.Warn("publishing again a notification that may have been delivered: its delivery cannot be checked (at least once)", logErr, err)
			case found:
				log.Info("notification was delivered before the restart; not publishing it again")
				return nil
			default:
				log.Info("notification in flight at the restart was not delivered; publishing it")
			}
		}
	}

	// The state as it was before this event, with the event in flight.
	n.mu.Lock()
	cur := n.st.clone()
	n.mu.Unlock()
	cur.InFlight = &inFlight{Event: id, Started: started.UTC()}
	if err := saveState(n.o.StateDir, cur); err != nil {
		return fmt.Errorf("event %d: %w", id, err)
	}
	n.pending = cur.InFlight
	if err := n.o.Publisher.Publish(ctx, msg); err != nil {
		// It may have been stored all the same (the answer was lost): the
		// retry asks the ledger first, as after a restart.
		n.unsure = cur.InFlight
		return fmt.Errorf("event %d: %w", id, err)
	}
	log.Info("notified")
	return nil
}

// eventMarker is the marker of event id's notification: the fragment of its
// click link, which ntfy's cache returns verbatim and a browser does not
// send to the server.
func eventMarker(id int64) string {
	return fmt.Sprintf("farm-event-%d", id)
}

// withFragment returns link with its fragment set to fragment. A link that
// does not parse gets the fragment appended: the notification goes out
// (rather than stall the stream), and a Ledger will not find it again.
func withFragment(link, fragment string) string {
	u, err := url.Parse(link)
	if err != nil {
		return link + "#" + fragment
	}
	u.Fragment = fragment
	u.RawFragment = ""
	return u.String()
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

// eventData is the union of the fields of the events acted on.
type eventData struct {
	Eval      int64  `json:"eval"`
	Target    int64  `json:"target"`
	Repo      string `json:"repo"`
	Branch    string `json:"branch"`
	Commit    string `json:"commit"`
	State     string `json:"state"`
	Failed    int    `json:"failed"`
	Host      string `json:"host"`
	System    string `json:"system"`
	Reason    string `json:"reason"`
	StorePath string `json:"store_path"`
	Current   string `json:"current"`
	Result    string `json:"result"`
	Seq       uint64 `json:"seq"`
}

// decide updates s for ev and returns the notification ev calls for.
func (n *Notifier) decide(s *state, ev Event) (*Message, error) {
	var d eventData
	if len(ev.Data) > 0 {
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return nil, fmt.Errorf("event %d data: %w", ev.ID, err)
		}
	}
	switch ev.Type {
	case EventEvalStarted:
		s.Evals[d.Eval] = evalInfo{Repo: d.Repo, Branch: d.Branch, Commit: d.Commit}
	case EventEvalFinished:
		delete(s.Evals, d.Eval)
		key := "eval:" + d.Repo + "/" + d.Branch
		switch {
		case d.State == evalStateFailed && d.Failed == 0:
			// Failed as a whole (no target to blame): nothing else says so.
			s.Failing[key] = "evaluation failed"
			return &Message{
				Title:    "Evaluation failed: " + d.Repo + " " + d.Branch,
				Body:     fmt.Sprintf("Evaluation %d of %s %s at %s failed.", d.Eval, d.Repo, d.Branch, short(d.Commit)),
				Priority: 4, Tags: []string{"rotating_light"},
			}, nil
		case d.State == evalStateDone && s.Failing[key] != "":
			delete(s.Failing, key)
			return &Message{
				Title: "Evaluation recovered: " + d.Repo + " " + d.Branch,
				Body:  fmt.Sprintf("%s %s evaluates again at %s.", d.Repo, d.Branch, short(d.Commit)),
				Tags:  []string{"white_check_mark"},
			}, nil
		}
	case EventTargetFailed:
		e := s.Evals[d.Eval]
		key := "build:" + e.Repo + "/" + e.Branch + "/" + d.Host
		s.Failing[key] = d.Reason
		where := strings.TrimSpace(e.Repo + " " + e.Branch)
		if e.Commit != "" {
			where += " at " + short(e.Commit)
		}
		body := fmt.Sprintf("%s (%s) failed", d.Host, d.System)
		if where != "" {
			body += " on " + where
		}
		if d.Reason != "" {
			body += ": " + d.Reason
		}
		return &Message{
			Title: "Build failed: " + d.Host, Body: body, Priority: 4,
			Tags:  []string{"rotating_light", d.Host},
			Click: n.link(fmt.Sprintf("/api/targets/%d/log", d.Target)),
		}, nil
	case EventTargetBuilt, EventTargetCached:
		e := s.Evals[d.Eval]
		key := "build:" + e.Repo + "/" + e.Branch + "/" + d.Host
		if _, failing := s.Failing[key]; failing {
			delete(s.Failing, key)
			return &Message{
				Title: "Build recovered: " + d.Host,
				Body:  fmt.Sprintf("%s (%s) builds again on %s %s at %s.", d.Host, d.System, e.Repo, e.Branch, short(e.Commit)),
				Tags:  []string{"white_check_mark", d.Host},
			}, nil
		}
	case EventHostDesired:
		if n.wakeable(d.Host) && d.Seq > s.Waking[d.Host] {
			s.Waking[d.Host] = d.Seq
		}
	case EventHostReport:
		if w, ok := s.Waking[d.Host]; ok && d.Seq >= w {
			delete(s.Waking, d.Host)
		}
		key := "deploy:" + d.Host
		switch d.Result {
		case reportRolledBack, reportFailed:
			why := d.Result + ": " + d.Reason
			if s.Failing[key] == why {
				return nil, nil // the same failure again: told already
			}
			s.Failing[key] = why
			title := "Deploy failed: " + d.Host
			if d.Result == reportRolledBack {
				title = "Deploy rolled back: " + d.Host
			}
			return &Message{
				Title: title, Priority: 4, Tags: []string{"warning", d.Host},
				Body: fmt.Sprintf("%s %s (manifest %d); it runs %s. %s", d.Host, d.Result, d.Seq, d.Current, d.Reason),
			}, nil
		case reportSwitched, reportUpToDate:
			if _, failing := s.Failing[key]; failing {
				delete(s.Failing, key)
				return &Message{
					Title: "Deploy recovered: " + d.Host, Tags: []string{"white_check_mark", d.Host},
					Body: fmt.Sprintf("%s is %s, running %s.", d.Host, d.Result, d.Current),
				}, nil
			}
			if d.Result == reportSwitched && n.o.Config.NotifySuccess {
				return &Message{
					Title: "Deployed: " + d.Host, Priority: 2, Tags: []string{"rocket", d.Host},
					Body: fmt.Sprintf("%s switched to %s (manifest %d).", d.Host, d.Current, d.Seq),
				}, nil
			}
		}
	}
	return nil, nil
}

// act does what an event asks beyond notifying: wake and poke hosts for a
// new desired closure, and note reports for the wakes waiting on them.
func (n *Notifier) act(ctx context.Context, ev Event) {
	var d eventData
	if json.Unmarshal(ev.Data, &d) != nil || d.Host == "" {
		return
	}
	switch ev.Type {
	case EventHostReport:
		n.mu.Lock()
		if d.Seq > n.reported[d.Host] {
			n.reported[d.Host] = d.Seq
		}
		n.mu.Unlock()
	case EventHostDesired:
		n.startWake(ctx, d.Host, d.Seq)
	}
}

func (n *Notifier) link(path string) string {
	base := n.o.Config.PublicURL
	if base == "" {
		base = n.o.BuilderURL
	}
	return strings.TrimSuffix(base, "/") + path
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

// wakeable reports whether the notifier pokes or wakes host.
func (n *Notifier) wakeable(host string) bool {
	_, canWake := n.o.Config.WakeOnLAN[host]
	return canWake || (n.o.PokeToken != "" && n.o.Config.Agents[host] != "")
}

// startWake makes sure host hears of desired closure seq: it pokes the
// host's agent and, if the host does not answer, wakes it.
func (n *Notifier) startWake(ctx context.Context, host string, seq uint64) {
	if !n.wakeable(host) {
		return
	}
	agentURL := n.o.Config.Agents[host]
	if n.o.PokeToken == "" {
		agentURL = ""
	}
	wt, canWake := n.o.Config.WakeOnLAN[host]
	n.mu.Lock()
	if cur, busy := n.waking[host]; busy {
		n.waking[host] = max(cur, seq)
		n.mu.Unlock()
		return
	}
	n.waking[host] = seq
	n.mu.Unlock()
	n.wakers.Add(1)
	go func() {
		defer n.wakers.Done()
		// A newer desired closure may arrive while this wake runs (it only
		// raises n.waking[host]): wake again until the newest is handled.
		var handled uint64
		for {
			n.mu.Lock()
			target := n.waking[host]
			if target <= handled || ctx.Err() != nil {
				delete(n.waking, host)
				n.mu.Unlock()
				return
			}
			n.mu.Unlock()
			n.wake(ctx, host, agentURL, wt, canWake)
			handled = target
		}
	}()
}

func (n *Notifier) wake(ctx context.Context, host, agentURL string, wt WakeTarget, canWake bool) {
	log := n.log.With(logHost, host)
	if agentURL != "" {
		err := n.poke(ctx, agentURL, false)
		if err == nil {
			log.Info("poked agent")
			return
		}
		log.Info("agent does not answer", logErr, err)
	}
	if !canWake {
		return
	}
	deadline := time.Now().Add(n.o.Config.wakeTimeout)
	var lastMagic time.Time
	var pokedFor uint64 // the desired seq the woken agent was last poked for
	for {
		n.mu.Lock()
		target := n.waking[host]
		done := n.reported[host] >= target
		n.mu.Unlock()
		if done {
			log.Info("woken host reported")
			return
		}
		if time.Now().After(deadline) {
			log.Warn("host did not wake and report", "timeout", n.o.Config.wakeTimeout.String())
			if n.o.Publisher != nil {
				_ = n.o.Publisher.Publish(context.WithoutCancel(ctx), Message{
					Title: "Host did not wake: " + host, Priority: 3, Tags: []string{"zzz", host},
					Body: fmt.Sprintf("%s got a new closure, was sent Wake-on-LAN packets for %s, and has not reported.", host, n.o.Config.wakeTimeout),
				})
			}
			return
		}
		if pokedFor == 0 && time.Since(lastMagic) >= n.o.MagicEvery {
			if err := n.o.Wake(ctx, wt.hw, wt.Address); err != nil {
				log.Warn("wake-on-lan", logErr, err)
			} else {
				log.Info("sent wake-on-lan packet", "address", wt.Address)
			}
			lastMagic = time.Now()
		}
		if agentURL != "" && pokedFor < target {
			// Poked again when a newer closure came while it woke.
			if err := n.poke(ctx, agentURL, true); err == nil {
				log.Info("poked woken agent", "seq", target)
				pokedFor = target
			}
		}
		if !sleep(ctx, n.o.PollEvery) {
			return
		}
	}
}

// poke asks the agent at base to check now.
func (n *Notifier) poke(ctx context.Context, base string, woken bool) error {
	ctx, cancel := context.WithTimeout(ctx, defaultPokeTimeout)
	defer cancel()
	body, _ := json.Marshal(map[string]bool{"woken": woken})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/poke", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("poke: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+n.o.PokeToken)
	resp, err := n.o.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("poke: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode/100 != 2 {
		return fmt.Errorf("poke: agent answered %s", resp.Status)
	}
	return nil
}
