package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/server/servertest"
	"github.com/homelab-farm/farm/internal/state"
)

// apiFixture is the route table over the seeded state.
type apiFixture struct {
	*servertest.Seeded
	handler http.Handler
}

func newAPIFixture(t *testing.T) *apiFixture {
	t.Helper()
	d := servertest.Seed(t)
	s := New(Deps{Config: d.Config, Jobs: d.Queue, State: d.State, Reports: d.State, LogDir: d.LogDir})
	return &apiFixture{Seeded: d, handler: s.Handler()}
}

func (f *apiFixture) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

// TestEvaluationAndJobIDs: /api/evaluations/{id} takes the evaluation id
// that /evaluations/{id} takes, and leads to its job; /api/jobs/{id} leads
// back to the evaluation.
func TestEvaluationAndJobIDs(t *testing.T) {
	f := newAPIFixture(t)
	ctx := context.Background()
	// A job queued after the fixture's third (never evaluated) gets an id
	// above its evaluation's.
	const commit = "4444444444dddddddddddddddddddddddddddddd"
	res0, err := f.Queue.Enqueue(ctx, queue.EnqueueRequest{Kind: queue.KindEval, Key: "homelab@" + commit, Repo: "homelab",
		Branch: "main", Commit: commit, Remote: queue.Remote{Forge: "github", URL: "https://github.com/alice/homelab"}})
	if err != nil {
		t.Fatal(err)
	}
	ev, _, err := f.State.StartEvaluation(ctx, state.Evaluation{JobID: res0.JobID, Repo: "homelab", Branch: "main", Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.State.PutTarget(ctx, state.Target{EvalID: ev.ID, Host: "alpha", System: "x86_64-linux", State: state.TargetPending}); err != nil {
		t.Fatal(err)
	}
	if ev.ID == ev.JobID {
		t.Fatalf("evaluation %d and its job share an id; the test needs them apart", ev.ID)
	}
	if res, _ := f.get(t, fmt.Sprintf("/evaluations/%d", ev.ID)); res.StatusCode != http.StatusOK {
		t.Fatalf("GET /evaluations/%d = %s", ev.ID, res.Status)
	}
	res, body := f.get(t, fmt.Sprintf("/api/evaluations/%d", ev.ID))
	var view evaluationView
	if res.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &view) != nil {
		t.Fatalf("GET /api/evaluations/%d = %s %s", ev.ID, res.Status, body)
	}
	if view.ID != ev.ID || view.Commit != ev.Commit || len(view.Targets) == 0 {
		t.Errorf("evaluation %d answered %+v", ev.ID, view)
	}
	res, body = f.get(t, fmt.Sprintf("/api/jobs/%d", view.JobID))
	var job jobView
	if res.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &job) != nil {
		t.Fatalf("GET /api/jobs/%d = %s %s", view.JobID, res.Status, body)
	}
	if job.ID != ev.JobID || job.Eval != ev.ID || job.Commit != ev.Commit {
		t.Errorf("job %d answered %+v, want evaluation %d", ev.JobID, job, ev.ID)
	}
	res, body = f.get(t, "/api/evaluations?limit=1")
	var list evaluationsResponse
	if res.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &list) != nil || len(list.Evaluations) != 1 {
		t.Errorf("GET /api/evaluations?limit=1 = %s %s", res.Status, body)
	}
}

// TestErrorPages: a browser gets an HTML error page, an API client JSON.
func TestErrorPages(t *testing.T) {
	base := httptest.NewServer(newAPIFixture(t).handler).URL
	for _, tc := range []struct{ path, accept, ctype string }{
		{"/targets/999", "text/html,application/xhtml+xml", "text/html; charset=utf-8"},
		{"/api/targets/999", "text/html", "application/json"},
		{"/targets/999", "", "application/json"},
	} {
		req, _ := http.NewRequest(http.MethodGet, base+tc.path, nil)
		if tc.accept != "" {
			req.Header.Set("Accept", tc.accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != tc.ctype {
			t.Errorf("GET %s (Accept %q): %d %s, want 404 %s", tc.path, tc.accept, resp.StatusCode, resp.Header.Get("Content-Type"), tc.ctype)
		}
	}
}
