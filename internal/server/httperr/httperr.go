package httperr

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Error is an error with what the client is told. Its cause, if any, is
// logged and never sent.
type Error struct {
	Status     int
	Msg        string
	Err        error
	RetryAfter time.Duration // > 0: sent as Retry-After
}

// New is a client error; declare it in the catalogue (errors.go).
func New(status int, msg string) *Error { return &Error{Status: status, Msg: msg} }

// Wrap is e with cause, which is logged and never sent.
func (e *Error) Wrap(cause error) *Error {
	c := *e
	c.Err = cause
	return &c
}

// WithRetryAfter is e telling the client to come back after d.
func (e *Error) WithRetryAfter(d time.Duration) *Error {
	c := *e
	c.RetryAfter = d
	return &c
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Status, e.Msg, e.Err)
	}
	return fmt.Sprintf("%d %s", e.Status, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches another *Error of the same status and message, so that
// errors.Is(err, ErrNoHost) holds for a wrapped copy.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == e.Status && t.Msg == e.Msg
}

// Log attribute keys.
const (
	logPath   = "path"
	logStatus = "status"
	logErr    = "err"
)

// HandlerFunc is a handler that returns its failure instead of writing it.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Handler adapts h: the one place that writes error answers and logs them.
// An *Error is sent as it says; any other error is a 500 "internal error"
// whose cause is logged only. A client that went away is logged at debug
// level and answered nothing. 5xx are logged as errors, busy refusals as
// warnings, the rest at info level.
func Handler(log *slog.Logger, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		if clientGone(r, err) {
			log.Debug("client went away", logPath, r.URL.Path, logErr, err)
			return
		}
		var he *Error
		if !errors.As(err, &he) {
			he = ErrInternal.Wrap(err)
		}
		level := slog.LevelInfo
		switch {
		case he.RetryAfter > 0:
			level = slog.LevelWarn // busy: a bound doing its job
		case he.Status >= 500:
			level = slog.LevelError
		}
		log.Log(r.Context(), level, "request refused", logPath, r.URL.Path, logStatus, he.Status, logErr, he)
		if he.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(he.RetryAfter/time.Second))))
		}
		if wantsHTML(r) {
			writeHTMLError(w, he.Status, he.Msg)
			return
		}
		WriteJSON(w, he.Status, map[string]string{"error": he.Msg})
	})
}

// clientGone reports whether err comes from the client having gone away
// (disconnected, or stopped reading past the write deadline) rather than
// from the server: there is no one to answer and nothing to alert on.
func clientGone(r *http.Request, err error) bool {
	return r.Context().Err() != nil || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, os.ErrDeadlineExceeded)
}

// wantsHTML reports whether the client is a browser on a dashboard page,
// or one that posted a dashboard form to the API (the rollout buttons).
// Hook and cache paths, and the API otherwise, always answer JSON or plain
// text.
func wantsHTML(r *http.Request) bool {
	p := r.URL.Path
	if strings.HasPrefix(p, "/hooks/") || strings.HasPrefix(p, "/nix-cache/") {
		return false
	}
	if strings.HasPrefix(p, "/api/") && !formPost(r) {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// formPost reports whether r posts an HTML form.
func formPost(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return r.Method == http.MethodPost && err == nil && mt == "application/x-www-form-urlencoded"
}

func writeHTMLError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><meta charset=utf-8><title>%d</title><p>%d %s</p><p><a href=\"/\">farm</a></p>\n",
		status, status, html.EscapeString(msg))
}

// WriteJSON answers status with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
