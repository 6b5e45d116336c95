package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/state"
)

// fakeJobs is a queue of func fields; a nil field answers nothing.
type fakeJobs struct {
	list func(queue.ListOptions) ([]queue.Job, error)
	get  func(int64) (queue.Job, error)
}

func (f fakeJobs) Enqueue(context.Context, queue.EnqueueRequest) (queue.EnqueueResult, error) {
	return queue.EnqueueResult{}, errors.New("fake queue takes nothing")
}

func (f fakeJobs) List(_ context.Context, o queue.ListOptions) ([]queue.Job, error) {
	if f.list == nil {
		return nil, nil
	}
	return f.list(o)
}

func (f fakeJobs) Get(_ context.Context, id int64) (queue.Job, error) {
	if f.get == nil {
		return queue.Job{}, queue.ErrNotFound
	}
	return f.get(id)
}

// fakeState is a state of func fields; a nil field finds nothing.
type fakeState struct {
	host func(string) (state.Host, error)
}

var _ State = fakeState{}

func (fakeState) Evaluations(context.Context, int) ([]state.Evaluation, error) { return nil, nil }
func (fakeState) Evaluation(context.Context, int64) (state.Evaluation, error) {
	return state.Evaluation{}, state.ErrNotFound
}
func (fakeState) Targets(context.Context, int64) ([]state.Target, error) { return nil, nil }
func (fakeState) Target(context.Context, int64) (state.Target, error) {
	return state.Target{}, state.ErrNotFound
}
func (fakeState) Hosts(context.Context) ([]state.Host, error) { return nil, nil }
func (fakeState) EvaluationByJob(context.Context, int64) (state.Evaluation, error) {
	return state.Evaluation{}, state.ErrNotFound
}
func (f fakeState) Host(_ context.Context, name string) (state.Host, error) {
	if f.host == nil {
		return state.Host{}, state.ErrNotFound
	}
	return f.host(name)
}
func (fakeState) EventsAfter(context.Context, int64, int) ([]state.Event, error) { return nil, nil }
func (fakeState) Changed() <-chan struct{}                                       { return make(chan struct{}) }
func (fakeState) Report(context.Context, string, string, string, string) error {
	return errors.New("fake state takes no report")
}
func (fakeState) Append(context.Context, string, any) (state.Event, error) {
	return state.Event{}, errors.New("fake state takes no event")
}

// fakeManifests renews with a func.
type fakeManifests func(state.Host) ([]byte, error)

func (f fakeManifests) CurrentManifest(_ context.Context, h state.Host) ([]byte, error) { return f(h) }

// TestDependencyFailures: what the client is told when a dependency fails
// or is not there, with every dependency a fake; causes are never sent.
func TestDependencyFailures(t *testing.T) {
	down := errors.New("secret cause: connection refused")
	withManifest := fakeState{host: func(name string) (state.Host, error) {
		return state.Host{Name: name, Manifest: json.RawMessage(`{}`)}, nil
	}}
	tests := []struct {
		name       string
		deps       Deps
		path       string
		wantStatus int
		wantError  string
		retryAfter string
	}{
		{"job list, queue down", Deps{Jobs: fakeJobs{list: func(queue.ListOptions) ([]queue.Job, error) { return nil, down }}},
			"/api/jobs", http.StatusServiceUnavailable, "queue unavailable", ""},
		{"job, queue down", Deps{Jobs: fakeJobs{get: func(int64) (queue.Job, error) { return queue.Job{}, down }}},
			"/api/jobs/5", http.StatusServiceUnavailable, "queue unavailable", ""},
		{"job missing", Deps{}, "/api/jobs/5", http.StatusNotFound, "no such job", ""},
		{"dashboard, queue down", Deps{Jobs: fakeJobs{list: func(queue.ListOptions) ([]queue.Job, error) { return nil, down }}},
			"/", http.StatusServiceUnavailable, "queue unavailable", ""},
		{"manifest expired", Deps{State: withManifest, Manifests: fakeManifests(func(state.Host) ([]byte, error) {
			return nil, fmt.Errorf("renew: %w", pipeline.ErrManifestExpired)
		})}, "/api/hosts/alpha/manifest", http.StatusServiceUnavailable, "the host's manifest has expired and could not be renewed yet", "60"},
		{"manifest renewal fails", Deps{State: withManifest, Manifests: fakeManifests(func(state.Host) ([]byte, error) { return nil, down })},
			"/api/hosts/alpha/manifest", http.StatusInternalServerError, "internal error", ""},
		{"no host", Deps{}, "/api/hosts/alpha", http.StatusNotFound, "no such host", ""},
		{"no metrics", Deps{}, "/metrics", http.StatusNotFound, "not found", ""},
		{"no cache", Deps{}, "/nix-cache/nix-cache-info", http.StatusNotFound, "no binary cache on this builder", ""},
		{"no agent tokens", Deps{}, "/api/hosts/alpha/seq", http.StatusUnauthorized, "bad or missing agent token", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.deps
			d.Config = config.Default()
			if d.Jobs == nil {
				d.Jobs = fakeJobs{}
			}
			if d.State == nil {
				d.State = fakeState{}
			}
			d.Reports = fakeState{}
			srv := httptest.NewServer(New(d).Handler())
			defer srv.Close()
			resp, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var answer struct{ Error string }
			_ = json.Unmarshal(b, &answer)
			if resp.StatusCode != tt.wantStatus || answer.Error != tt.wantError {
				t.Errorf("GET %s: %d %s, want %d with error %q", tt.path, resp.StatusCode, b, tt.wantStatus, tt.wantError)
			}
			if got := resp.Header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("GET %s: Retry-After %q, want %q", tt.path, got, tt.retryAfter)
			}
			if strings.Contains(string(b), "secret cause") {
				t.Errorf("GET %s: the cause reached the client: %s", tt.path, b)
			}
		})
	}
}
