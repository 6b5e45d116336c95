package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/homelab-farm/farm/internal/cli"
	"github.com/homelab-farm/farm/internal/httpsafe"
)

// What strangers on the network may hold of the builder by default. The
// webhook budget holds one body of the largest size (25 MiB) at a time, and
// many of the usual few kilobytes: a burst of 20 MiB posts keeps the
// builder near 100 MiB resident, garbage included (BenchmarkWebhookBurst).
const (
	defaultWebhookBudget = 32 << 20
	defaultMaxStreams    = 64
	defaultStallTimeout  = 60 * time.Second
	// retryAfter is what a client refused for being one too many is told
	// to wait.
	retryAfter = 5 * time.Second
)

// limitFlags bound what unauthenticated clients can make the builder hold:
// webhook bodies in memory, open event and log streams, stalled writes.
type limitFlags struct {
	webhookBudget int64
	maxStreams    int
	stallTimeout  time.Duration
}

func (l *limitFlags) register(fs *cli.FlagSet) {
	fs.SizeVar(&l.webhookBudget, "webhook-body-budget", 0,
		"`bytes` of webhook bodies held in memory at once before their signatures are checked, or a size with a unit (64MiB); beyond, 503 (default 32 MiB or max_body_bytes if larger)")
	fs.IntVar(&l.maxStreams, "max-streams", defaultMaxStreams,
		"open /api/events and log-follow streams at once; beyond, 503")
	fs.DurationVar(&l.stallTimeout, "stall-timeout", defaultStallTimeout,
		"drop a client when one write to it blocks this `long` (streams, cache downloads, logs)")
}

// validate checks the limits and fills in the default budget; maxBody is the largest webhook body accepted,
// which the budget must hold.
func (l *limitFlags) validate(maxBody int64) error {
	if l.webhookBudget == 0 {
		l.webhookBudget = max(defaultWebhookBudget, maxBody)
	}
	if l.maxStreams <= 0 || l.stallTimeout <= 0 {
		return errors.New("--max-streams and --stall-timeout must be positive")
	}
	if l.webhookBudget < maxBody {
		return fmt.Errorf("--webhook-body-budget %d is below max_body_bytes %d: the largest webhook could never be read", l.webhookBudget, maxBody)
	}
	return nil
}

// busy is a 503 telling the client to come back later.
func busy(msg string) error {
	return &httpError{status: http.StatusServiceUnavailable, msg: msg, retryAfter: retryAfter}
}

// hookFirstRead is the buffer a webhook body is first read into: what a
// client that announces a body and sends nothing holds.
const hookFirstRead = 4 << 10

// readHookBody reads a webhook body of at most limit bytes, holding the
// memory it reads into in the budget until release is called: a burst of
// bodies, signed or not, never holds more than the budget. The first
// hookFirstRead bytes go into a small buffer, so a client that announces a
// large body and sends nothing holds next to nothing; then a body of known
// length takes its Content-Length at once, and a chunked one doubles its
// buffer as bytes arrive. A body that does not fit is refused with 503,
// the rest of it unread.
func readHookBody(w http.ResponseWriter, r *http.Request, budget *httpsafe.Budget, limit int64) (body []byte, release func(), err error) {
	if r.ContentLength > limit {
		return nil, nil, errorf(http.StatusRequestEntityTooLarge, "body too large", nil)
	}
	var taken int64 // the capacity of body: an outgrown buffer is garbage
	release = func() { budget.Give(taken); taken = 0 }
	fail := func(err error) ([]byte, func(), error) {
		release()
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, nil, errorf(http.StatusRequestEntityTooLarge, "body too large", nil)
		}
		return nil, nil, errorf(http.StatusBadRequest, "cannot read body", err)
	}
	most := limit
	if r.ContentLength >= 0 {
		most = r.ContentLength
	}
	rd := http.MaxBytesReader(w, r.Body, limit)
	for {
		if len(body) == cap(body) && int64(cap(body)) < most {
			grown := min(max(2*int64(cap(body)), hookFirstRead), most)
			if r.ContentLength >= 0 && cap(body) > 0 {
				grown = most // one buffer of the announced length, no garbage of growth
			}
			if !budget.TryTake(grown - taken) {
				release()
				return nil, nil, busy("too many webhook bodies in flight")
			}
			taken = grown
			body = append(make([]byte, 0, grown), body...)
		}
		var n int
		if len(body) < cap(body) {
			n, err = rd.Read(body[len(body):cap(body)])
			body = body[:len(body)+n]
		} else {
			// As many bytes as there may be: the body must end here.
			var extra [1]byte
			if n, err = rd.Read(extra[:]); n > 0 {
				return fail(&http.MaxBytesError{Limit: limit})
			}
		}
		if errors.Is(err, io.EOF) {
			return body, release, nil
		}
		if err != nil {
			return fail(err)
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
		return nil, busy("too many open streams")
	}
	return release, nil
}
