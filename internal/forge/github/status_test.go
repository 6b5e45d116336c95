package github_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	gh "github.com/google/go-github/v93/github"

	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/forge/forgetest"
	"github.com/homelab-farm/farm/internal/forge/github"
	"github.com/homelab-farm/farm/internal/forge/httpretry"
)

// fakeAPI is the forge's status API answering with statuses in turn.
func fakeAPI(t *testing.T, statuses ...int) (*httptest.Server, func() []forgetest.Call) {
	t.Helper()
	return forgetest.FakeAPI(t, `{"id": 1, "state": "success"}`, statuses...)
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
	if last.Method != http.MethodPost || last.Path != "/repos/alice/homelab/statuses/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c" {
		t.Errorf("call = %s %s", last.Method, last.Path)
	}
	if last.Auth != "Bearer tok3n" {
		t.Errorf("Authorization = %q", last.Auth)
	}
	want := map[string]any{"state": "failure", "context": "farm/host/malphas", "description": "build failed", "target_url": "http://farm/e/1"}
	for k, v := range want {
		if last.Body[k] != v {
			t.Errorf("body[%s] = %v, want %v", k, last.Body[k], v)
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
	if p := calls()[0].Path; p != "/api/v3/repos/alice/homelab/statuses/abc" {
		t.Errorf("path = %s", p)
	}
}
