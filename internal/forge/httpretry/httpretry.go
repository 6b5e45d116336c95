package httpretry

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Options tune a client. Zero values take the defaults.
type Options struct {
	RetryMax int           // retries after the first try; default 4
	WaitMin  time.Duration // first backoff; default 1s
	WaitMax  time.Duration // longest wait, Retry-After included; default 60s
	Timeout  time.Duration // per attempt; default 30s
	Log      *slog.Logger  // retries are logged at debug level; nil: not logged
}

// New returns an *http.Client that retries as the package comment says.
func New(o Options) *http.Client {
	if o.RetryMax == 0 {
		o.RetryMax = 4
	}
	if o.WaitMin == 0 {
		o.WaitMin = time.Second
	}
	if o.WaitMax == 0 {
		o.WaitMax = 60 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	c := retryablehttp.NewClient()
	c.HTTPClient.Timeout = o.Timeout
	c.RetryMax = o.RetryMax
	c.RetryWaitMin = o.WaitMin
	c.RetryWaitMax = o.WaitMax
	c.Logger = nil
	if o.Log != nil {
		c.Logger = leveled{o.Log}
	}
	c.CheckRetry = retryablehttp.DefaultRetryPolicy
	c.Backoff = Backoff
	c.ErrorHandler = lastResponse
	return c.StandardClient()
}

// lastResponse hands the caller the final response when there is one, so
// it sees "502 Bad Gateway" rather than "giving up after 5 attempts".
func lastResponse(resp *http.Response, err error, tries int) (*http.Response, error) {
	if resp != nil {
		return resp, nil
	}
	return nil, fmt.Errorf("after %d attempts: %w", tries, err)
}

// Backoff honours Retry-After on 429 and every 5xx, capped at max, and
// otherwise doubles from min.
func Backoff(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500) {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return clamp(d, 0, max)
		}
	}
	d := min
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	return clamp(d, min, max)
}

func clamp(d, lo, hi time.Duration) time.Duration {
	return max(lo, min(d, hi))
}

// retryAfter parses a Retry-After value: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// leveled adapts slog to retryablehttp's LeveledLogger, all at debug.
type leveled struct{ l *slog.Logger }

func (l leveled) Error(msg string, kv ...any) {
	l.l.Log(context.Background(), slog.LevelDebug, msg, kv...)
}
func (l leveled) Info(msg string, kv ...any) {
	l.l.Log(context.Background(), slog.LevelDebug, msg, kv...)
}
func (l leveled) Debug(msg string, kv ...any) {
	l.l.Log(context.Background(), slog.LevelDebug, msg, kv...)
}
func (l leveled) Warn(msg string, kv ...any) {
	l.l.Log(context.Background(), slog.LevelDebug, msg, kv...)
}
