package forgejo_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/forge/forgejo"
	"github.com/homelab-farm/farm/internal/forge/forgetest"
	"github.com/homelab-farm/farm/internal/forge/httpretry"
)

// fakeAPI is the forge's status API answering with statuses in turn.
func fakeAPI(t *testing.T, statuses ...int) (*httptest.Server, func() []forgetest.Call) {
	t.Helper()
	return forgetest.FakeAPI(t, `{"message": "nope"}`, statuses...)
}

func TestSetStatusRetries(t *testing.T) {
	t.Parallel()
	srv, calls := fakeAPI(t, http.StatusBadGateway, http.StatusTooManyRequests, http.StatusCreated)
	c, err := forgejo.NewStatusClient(srv.URL+"/api/v1", "tok3n", httpretry.New(httpretry.Options{WaitMin: 10 * time.Millisecond, WaitMax: 5 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	st := forge.Status{State: forge.StateSuccess, Context: "farm/eval", Description: "3 hosts built", TargetURL: "http://farm/e/1"}
	if err := c.SetStatus(context.Background(), "alice/homelab", "bffeb74224043ba2feb48d137756c8a9331c449a", st); err != nil {
		t.Fatalf("SetStatus = %v", err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("returned after %v: Retry-After: 1 not honoured", waited)
	}
	got := calls()
	if len(got) != 3 {
		t.Fatalf("calls = %d, want 3 (502, 429, 201)", len(got))
	}
	for _, c := range got {
		if c.Method != http.MethodPost || c.Path != "/api/v1/repos/alice/homelab/statuses/bffeb74224043ba2feb48d137756c8a9331c449a" || c.Auth != "token tok3n" {
			t.Errorf("call = %s %s auth %q", c.Method, c.Path, c.Auth)
		}
		want := map[string]any{"state": "success", "context": "farm/eval", "description": "3 hosts built", "target_url": "http://farm/e/1"}
		for k, v := range want {
			if c.Body[k] != v {
				t.Errorf("body[%s] = %v, want %v (the retried body must be whole)", k, c.Body[k], v)
			}
		}
	}
}

func TestSetStatusRefused(t *testing.T) {
	t.Parallel()
	srv, calls := fakeAPI(t, http.StatusForbidden)
	c, err := forgejo.NewStatusClient(srv.URL+"/api/v1/", "t", httpretry.New(httpretry.Options{WaitMin: time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	err = c.SetStatus(context.Background(), "alice/homelab", "abc", forge.Status{State: forge.StatePending, Context: "farm/eval"})
	var ae *forge.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
		t.Fatalf("SetStatus = %v, want APIError 403", err)
	}
	if n := len(calls()); n != 1 {
		t.Errorf("calls = %d, want 1: a 403 is not retried", n)
	}
}

func TestAPIURL(t *testing.T) {
	t.Parallel()
	got, err := forgejo.APIURL("https://codeberg.org/alice/homelab")
	if err != nil || got != "https://codeberg.org/api/v1/" {
		t.Errorf("APIURL = %q, %v", got, err)
	}
}
