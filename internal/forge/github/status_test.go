package github_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	gh "github.com/google/go-github/v93/github"

	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/forge/github"
	"github.com/homelab-farm/farm/internal/forge/httpretry"
)

type call struct {
	method, path, auth string
	body               map[string]any
}

// fakeAPI answers with the given statuses in turn (the last one repeats)
// and records every call.
func fakeAPI(t *testing.T, statuses ...int) (*httptest.Server, func() []call) {
	t.Helper()
	var mu sync.Mutex
	var calls []call
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(b, &body)
		mu.Lock()
		calls = append(calls, call{r.Method, r.URL.Path, r.Header.Get("Authorization"), body})
		n := len(calls)
		mu.Unlock()
		code := statuses[min(n, len(statuses))-1]
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, `{"id": 1, "state": "success"}`)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []call {
		mu.Lock()
		defer mu.Unlock()
		return append([]call(nil), calls...)
	}
}

func TestSetStatusRetries(t *testing.T) {
	t.Parallel()
	srv, calls := fakeAPI(t, http.StatusBadGateway, http.StatusTooManyRequests, http.StatusCreated)
	hc := httpretry.New(httpretry.Options{WaitMin: 10 * time.Millisecond, WaitMax: 5 * time.Second})
	c, err := github.NewStatusClient(srv.URL, "tok3n", hc)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	st := forge.Status{State: forge.StateFailure, Context: "farm/host/malphas", Description: "build failed", TargetURL: "http://farm/e/1"}
	if err := c.SetStatus(context.Background(), "alice/homelab", "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", st); err != nil {
		t.Fatalf("SetStatus = %v", err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("returned after %v: Retry-After: 1 not honoured", waited)
	}
	got := calls()
	if len(got) != 3 {
		t.Fatalf("calls = %d, want 3 (502, 429, 201)", len(got))
	}
	last := got[2]
	if last.method != http.MethodPost || last.path != "/repos/alice/homelab/statuses/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c" {
		t.Errorf("call = %s %s", last.method, last.path)
	}
	if last.auth != "Bearer tok3n" {
		t.Errorf("Authorization = %q", last.auth)
	}
	want := map[string]any{"state": "failure", "context": "farm/host/malphas", "description": "build failed", "target_url": "http://farm/e/1"}
	for k, v := range want {
		if last.body[k] != v {
			t.Errorf("body[%s] = %v, want %v", k, last.body[k], v)
		}
	}
}

func TestSetStatusGivesUp(t *testing.T) {
	t.Parallel()
	srv, calls := fakeAPI(t, http.StatusBadGateway)
	hc := httpretry.New(httpretry.Options{RetryMax: 2, WaitMin: time.Millisecond, WaitMax: 5 * time.Millisecond})
	c, err := github.NewStatusClient(srv.URL+"/api/v3", "t", hc)
	if err != nil {
		t.Fatal(err)
	}
	err = c.SetStatus(context.Background(), "alice/homelab", "abc", forge.Status{State: forge.StatePending, Context: "farm/eval"})
	var ge *gh.ErrorResponse
	if err == nil || !errors.As(err, &ge) || ge.Response.StatusCode != http.StatusBadGateway {
		t.Fatalf("SetStatus = %v, want the 502", err)
	}
	if n := len(calls()); n != 3 {
		t.Errorf("calls = %d, want 3", n)
	}
	if p := calls()[0].path; p != "/api/v3/repos/alice/homelab/statuses/abc" {
		t.Errorf("path = %s", p)
	}
}
