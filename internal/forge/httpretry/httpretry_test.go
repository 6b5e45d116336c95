package httpretry

import (
	"net/http"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	resp := func(code int, retryAfter string) *http.Response {
		h := http.Header{}
		if retryAfter != "" {
			h.Set("Retry-After", retryAfter)
		}
		return &http.Response{StatusCode: code, Header: h}
	}
	tests := []struct {
		name    string
		attempt int
		resp    *http.Response
		want    time.Duration
	}{
		{"first retry", 0, nil, time.Second},
		{"doubles", 2, resp(502, ""), 4 * time.Second},
		{"capped", 10, resp(500, ""), 10 * time.Second},
		{"429 Retry-After seconds", 0, resp(429, "3"), 3 * time.Second},
		{"502 Retry-After honoured too", 0, resp(502, "2"), 2 * time.Second},
		{"Retry-After capped", 0, resp(429, "3600"), 10 * time.Second},
		{"Retry-After date in the past", 0, resp(429, "Fri, 31 Dec 1999 23:59:59 GMT"), 0},
		{"garbage Retry-After", 1, resp(429, "soon"), 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Backoff(time.Second, 10*time.Second, tt.attempt, tt.resp); got != tt.want {
				t.Errorf("Backoff = %v, want %v", got, tt.want)
			}
		})
	}
}
