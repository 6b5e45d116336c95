package httpsafe

import (
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bearer reports whether r carries "Authorization: Bearer <want>". The
// scheme is matched without regard to case (RFC 7235); the token is
// compared in constant time. An empty want never matches.
func Bearer(r *http.Request, want []byte) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || len(want) == 0 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimLeft(token, " ")), want) == 1
}

// NoSniff wraps h so that every answer, errors included, carries
// X-Content-Type-Options: nosniff: a browser never runs a build log or a
// JSON answer as a page or a script.
func NoSniff(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

// Busy answers 503 with Retry-After (in whole seconds, at least 1).
func Busy(w http.ResponseWriter, retryAfter time.Duration, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(retryAfter.Round(time.Second)/time.Second))))
	http.Error(w, msg, http.StatusServiceUnavailable)
}

// Budget is a pool of bytes that requests take from before they hold a body
// in memory and give back when done. It never blocks: a request that does
// not fit is refused. Safe for concurrent use.
type Budget struct {
	mu    sync.Mutex
	total int64
	used  int64
}

// NewBudget returns a budget of total bytes.
func NewBudget(total int64) *Budget { return &Budget{total: total} }

// TryTake takes n bytes if they are free and reports whether it did.
func (b *Budget) TryTake(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n < 0 || b.used+n > b.total {
		return false
	}
	b.used += n
	return true
}

// Give returns n bytes taken before.
func (b *Budget) Give(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if b.used < 0 {
		panic("httpsafe: budget given back more than was taken")
	}
}

// Used is the number of bytes taken now.
func (b *Budget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Total is the size of the budget.
func (b *Budget) Total() int64 { return b.total }

// Slots bounds how many long-lived streams are open at once. Safe for
// concurrent use.
type Slots struct{ ch chan struct{} }

// NewSlots returns n slots.
func NewSlots(n int) *Slots { return &Slots{ch: make(chan struct{}, n)} }

// TryTake takes a slot if one is free; release gives it back.
func (s *Slots) TryTake() (release func(), ok bool) {
	select {
	case s.ch <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-s.ch }) }, true
	default:
		return nil, false
	}
}

// InUse is the number of slots taken now.
func (s *Slots) InUse() int { return len(s.ch) }

// Writer writes to a response with a fresh write deadline before every
// write and flush, so a client that reads at any steady pace gets
// everything however long it takes, and one that stops reading for the
// stall timeout is cut. It lifts any total write timeout of the server.
type Writer struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
	now   func() time.Time
}

// NewWriter wraps w; stall <= 0 means no write deadline at all.
func NewWriter(w http.ResponseWriter, stall time.Duration) *Writer {
	return &Writer{w: w, rc: http.NewResponseController(w), stall: stall, now: time.Now}
}

func (w *Writer) extend() {
	var deadline time.Time
	if w.stall > 0 {
		deadline = w.now().Add(w.stall)
	}
	// An error means the writer cannot take deadlines (a recorder in a
	// test); the server's own timeouts then apply.
	_ = w.rc.SetWriteDeadline(deadline)
}

// Write writes p under a fresh deadline.
func (w *Writer) Write(p []byte) (int, error) {
	w.extend()
	return w.w.Write(p)
}

// Flush sends what is buffered under a fresh deadline.
func (w *Writer) Flush() error {
	w.extend()
	return w.rc.Flush()
}
