package notify

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"
)

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
		click = n.rules.link("/")
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
