package ntfytest

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Message is one published message as ntfy's JSON API shows it.
type Message struct {
	ID       string   `json:"id"`
	Time     int64    `json:"time"` // Unix seconds, the server's clock
	Event    string   `json:"event"`
	Topic    string   `json:"topic"`
	Title    string   `json:"title,omitempty"`
	Message  string   `json:"message"`
	Priority int      `json:"priority,omitempty"`
	Tags     []string `json:"tags,omitempty"`
	Click    string   `json:"click,omitempty"`
	// Auth is the Authorization header it came with; ntfy does not show it.
	Auth string `json:"-"`
}

// Poll is one request to the poll API.
type Poll struct {
	Topic, Since, Auth string
}

// Server is a running fake ntfy server. Its methods may be called from any
// goroutine.
type Server struct {
	// URL is the server's base URL.
	URL string

	mu         sync.Mutex
	now        func() time.Time
	msgs       []Message
	polls      []Poll
	failNext   int
	pollStatus int
	onPublish  func(Message)
	refuse     func(Message) int
}

// New starts a server that is closed when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{now: time.Now}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// FailNext makes the next n publishes answer 503 Service Unavailable
// without storing anything.
func (s *Server) FailNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = n
}

// FailPolls makes every poll answer status (0: poll normally), as a server
// whose cache is disabled or whose token may only write might.
func (s *Server) FailPolls(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pollStatus = status
}

// Refuse sets a function that sees every publish (its headers decoded)
// before it is stored: a non-zero status is answered instead, as ntfy does
// for a message it will not take (400 for a bad header, 413 for one too
// large), and nothing is stored.
func (s *Server) Refuse(f func(Message) int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = f
}

// OnPublish sets a function called with every stored message after it is
// cached and before the publisher is answered (outside the server's lock).
func (s *Server) OnPublish(f func(Message)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onPublish = f
}

// Store caches m as if it had been published, filling in its id, time,
// event and topic where they are empty.
func (s *Server) Store(m Message) Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.storeLocked(m)
}

func (s *Server) storeLocked(m Message) Message {
	if m.ID == "" {
		m.ID = fmt.Sprintf("msg%09d", len(s.msgs)+1)
	}
	if m.Time == 0 {
		m.Time = s.now().Unix()
	}
	if m.Event == "" {
		m.Event = "message"
	}
	s.msgs = append(s.msgs, m)
	return m
}

// Messages returns the messages published so far, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Titles returns the titles of the messages published so far, oldest first.
func (s *Server) Titles() []string {
	var ts []string
	for _, m := range s.Messages() {
		ts = append(ts, m.Title)
	}
	return ts
}

// Polls returns the poll requests received so far.
func (s *Server) Polls() []Poll {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Poll(nil), s.polls...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	path := strings.Trim(r.URL.Path, "/")
	switch {
	case (r.Method == http.MethodPost || r.Method == http.MethodPut) && path != "" && !strings.Contains(path, "/"):
		s.publish(w, r, path)
	case r.Method == http.MethodGet && strings.HasSuffix(path, "/json"):
		s.poll(w, r, strings.TrimSuffix(path, "/json"))
	default:
		http.Error(w, `{"code":40401,"http":404,"error":"page not found"}`, http.StatusNotFound)
	}
}

func (s *Server) publish(w http.ResponseWriter, r *http.Request, topic string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	m := Message{
		Topic: topic, Title: header(r, "Title"), Message: string(body),
		Click: header(r, "Click"), Auth: r.Header.Get("Authorization"),
	}
	if p := r.Header.Get("Priority"); p != "" {
		if m.Priority = priority(p); m.Priority == 0 {
			http.Error(w, `{"code":40007,"http":400,"error":"invalid priority"}`, http.StatusBadRequest)
			return
		}
	}
	if tags := header(r, "Tags"); tags != "" {
		for _, tag := range strings.Split(tags, ",") {
			m.Tags = append(m.Tags, strings.TrimSpace(tag))
		}
	}
	s.mu.Lock()
	if refuse := s.refuse; refuse != nil {
		s.mu.Unlock()
		if status := refuse(m); status != 0 {
			http.Error(w, fmt.Sprintf(`{"code":%d00,"http":%d,"error":"refused"}`, status, status), status)
			return
		}
		s.mu.Lock()
	}
	if s.failNext > 0 {
		s.failNext--
		s.mu.Unlock()
		http.Error(w, `{"code":50301,"http":503,"error":"try later"}`, http.StatusServiceUnavailable)
		return
	}
	m = s.storeLocked(m)
	hook := s.onPublish
	s.mu.Unlock()
	if hook != nil {
		hook(m)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(m)
}

// header reads a header as ntfy does: RFC 2047 encoded words (the way a
// client sends text beyond ASCII) are decoded.
func header(r *http.Request, name string) string {
	v := r.Header.Get(name)
	if d, err := new(mime.WordDecoder).DecodeHeader(v); err == nil {
		return d
	}
	return v
}

// priority reads a Priority header as ntfy does: 1 to 5 or a name.
func priority(p string) int {
	switch strings.ToLower(p) {
	case "1", "min":
		return 1
	case "2", "low":
		return 2
	case "3", "default":
		return 3
	case "4", "high":
		return 4
	case "5", "max", "urgent":
		return 5
	}
	return 0
}

// poll answers the cached messages of topic that the since parameter
// selects: "all" (also the default), "none", "latest", a message id (the
// messages after it), Unix seconds or a duration (the messages at or after
// that time).
func (s *Server) poll(w http.ResponseWriter, r *http.Request, topic string) {
	q := r.URL.Query()
	since := q.Get("since")
	s.mu.Lock()
	s.polls = append(s.polls, Poll{Topic: topic, Since: since, Auth: r.Header.Get("Authorization")})
	status := s.pollStatus
	var msgs []Message
	for _, m := range s.msgs {
		if m.Topic == topic {
			msgs = append(msgs, m)
		}
	}
	now := s.now()
	s.mu.Unlock()
	if q.Get("poll") != "1" {
		http.Error(w, "this fake answers polls only (poll=1)", http.StatusBadRequest)
		return
	}
	if status != 0 {
		http.Error(w, fmt.Sprintf(`{"code":%d01,"http":%d,"error":"poll refused"}`, status, status), status)
		return
	}
	var out []Message
	switch {
	case since == "" || since == "all":
		out = msgs
	case since == "none":
	case since == "latest":
		if len(msgs) > 0 {
			out = msgs[len(msgs)-1:]
		}
	default:
		from, ok := sinceTime(since, now)
		for i, m := range msgs {
			switch {
			case !ok && m.ID == since:
				out = msgs[i+1:]
			case ok && m.Time >= from:
				out = append(out, m)
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-ndjson; charset=utf-8")
	enc := json.NewEncoder(w)
	for _, m := range out {
		_ = enc.Encode(m)
	}
}

// sinceTime reads since as Unix seconds or a duration before now.
func sinceTime(since string, now time.Time) (int64, bool) {
	if n, err := strconv.ParseInt(since, 10, 64); err == nil {
		return n, true
	}
	if d, err := time.ParseDuration(since); err == nil {
		return now.Add(-d).Unix(), true
	}
	return 0, false
}
