package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/rollout"
	"github.com/homelab-farm/farm/internal/state"
)

// fakeRollouts are rollouts of func fields; a nil field finds nothing.
type fakeRollouts struct {
	report   func(host string, rep farmapi.Report) error
	get      func(id int64) (state.Rollout, error)
	active   func() ([]state.Rollout, error)
	resume   func(id int64) (state.Rollout, error)
	abort    func(id int64) (state.Rollout, error)
	rollback func(req farmapi.RollbackRequest) (state.Rollout, error)
	recent   func(repo string, limit int) ([]state.Rollout, error)
}

var _ Rollouts = fakeRollouts{}

func (f fakeRollouts) Report(_ context.Context, host string, rep farmapi.Report) error {
	if f.report == nil {
		return nil
	}
	return f.report(host, rep)
}

func (f fakeRollouts) Rollout(_ context.Context, id int64) (state.Rollout, error) {
	if f.get == nil {
		return state.Rollout{}, state.ErrNotFound
	}
	return f.get(id)
}

func (f fakeRollouts) ActiveRollouts(context.Context) ([]state.Rollout, error) {
	if f.active == nil {
		return nil, nil
	}
	return f.active()
}

func (f fakeRollouts) Resume(_ context.Context, id int64) (state.Rollout, error) {
	if f.resume == nil {
		return state.Rollout{}, state.ErrNotFound
	}
	return f.resume(id)
}

func (f fakeRollouts) Abort(_ context.Context, id int64, _ string) (state.Rollout, error) {
	if f.abort == nil {
		return state.Rollout{}, state.ErrNotFound
	}
	return f.abort(id)
}

func (f fakeRollouts) Rollback(_ context.Context, req farmapi.RollbackRequest) (state.Rollout, error) {
	if f.rollback == nil {
		return state.Rollout{}, errors.New("fake rollouts roll nothing back")
	}
	return f.rollback(req)
}

func (f fakeRollouts) RecentRollouts(_ context.Context, repo string, limit int) ([]state.Rollout, error) {
	if f.recent == nil {
		return nil, nil
	}
	return f.recent(repo, limit)
}

// testRollout is rollout id of commit to stolas (wave 0) and andras (wave 1).
func testRollout(t *testing.T, id int64, commit string) state.Rollout {
	t.Helper()
	ro, err := rollout.New(commit, rollout.KindPush, []rollout.Target{
		{Host: "stolas", Wave: 0, StorePath: "/nix/store/aaaa-stolas"},
		{Host: "andras", Wave: 1, StorePath: "/nix/store/bbbb-andras"},
	}, time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return state.Rollout{ID: id, Repo: "homelab", State: ro}
}

// TestRolloutAPI: the rollout routes take only the admin token (bearer,
// or a form field for the dashboard's buttons) and map the rollouts'
// errors to 404, 409 and 201 with clear messages.
func TestRolloutAPI(t *testing.T) {
	const commit = "0123456789abcdef0123456789abcdef01234567"
	ro := testRollout(t, 7, commit)
	fake := fakeRollouts{
		get: func(id int64) (state.Rollout, error) {
			if id != 7 {
				return state.Rollout{}, fmt.Errorf("rollout %d: %w", id, state.ErrNotFound)
			}
			return ro, nil
		},
		active: func() ([]state.Rollout, error) { return []state.Rollout{ro}, nil },
		resume: func(id int64) (state.Rollout, error) {
			if id == 8 {
				return state.Rollout{}, fmt.Errorf("resume rollout 8: %w", rollout.ErrNotHalted)
			}
			return ro, nil
		},
		abort: func(id int64) (state.Rollout, error) {
			if id == 8 {
				return state.Rollout{}, fmt.Errorf("abort rollout 8: %w", rollout.ErrEnded)
			}
			return ro, nil
		},
		rollback: func(req farmapi.RollbackRequest) (state.Rollout, error) {
			switch req.To {
			case "":
				return state.Rollout{}, fmt.Errorf("%w: \"\" is not a commit id", pipeline.ErrRollbackRefused)
			case "deadbeef":
				return state.Rollout{}, fmt.Errorf("%w: cannot roll back to deadbeef: stolas /nix/store/aaaa-stolas", pipeline.ErrClosureMissing)
			case "cafebabe":
				return state.Rollout{}, fmt.Errorf("%w: no deploy of a commit cafebabe has finished", pipeline.ErrRollbackRefused)
			}
			return ro, nil
		},
	}
	s := New(Deps{Config: &config.Config{}, Jobs: fakeJobs{}, State: fakeState{}, Reports: fakeState{},
		AdminToken: []byte("admin"), Rollouts: fake})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)

	const bearer, form = "bearer", "form"
	tests := []struct {
		name, method, path, auth, body string
		wantStatus                     int
		wantBody                       string
	}{
		{"list", "GET", "/api/rollouts", bearer, "", 200, `"commit":"` + commit},
		{"list without token", "GET", "/api/rollouts", "", "", 401, "admin token"},
		{"get", "GET", "/api/rollouts/7", bearer, "", 200, `"host":"andras"`},
		{"get without token", "GET", "/api/rollouts/7", "", "", 401, "admin token"},
		{"get unknown", "GET", "/api/rollouts/9", bearer, "", 404, "no such rollout"},
		{"rollback", "POST", "/api/rollouts", bearer, `{"to":"0123456"}`, 201, `"id":7`},
		{"rollback without token", "POST", "/api/rollouts", "", `{"to":"0123456"}`, 401, "admin token"},
		{"rollback as curl -d sends it", "POST", "/api/rollouts", "bearer-curl", `{"to":"0123456"}`, 201, `"id":7`}, // JSON labelled a form
		{"rollback with the form token", "POST", "/api/rollouts", form, `{"to":"0123456"}`, 401, "admin token"},     // JSON body: not a form
		{"rollback by form", "POST", "/api/rollouts", form, "", 303, ""},
		{"rollback by form with a wrong token", "POST", "/api/rollouts", "wrong-form", "", 401, "admin token"},
		{"rollback of a collected closure", "POST", "/api/rollouts", bearer, `{"to":"deadbeef"}`, 409, "no longer in the binary cache: cannot roll back to deadbeef"},
		{"rollback never deployed", "POST", "/api/rollouts", bearer, `{"to":"cafebabe"}`, 409, "no deploy of a commit cafebabe"},
		{"rollback malformed", "POST", "/api/rollouts", bearer, `{"to":`, 400, "malformed request"},
		{"resume", "POST", "/api/rollouts/7/resume", bearer, "", 200, `"id":7`},
		{"resume not halted", "POST", "/api/rollouts/8/resume", bearer, "", 409, "not halted"},
		{"resume without token", "POST", "/api/rollouts/7/resume", "", "", 401, "admin token"},
		{"resume by form", "POST", "/api/rollouts/7/resume", form, "", 303, ""},
		{"abort", "POST", "/api/rollouts/7/abort", bearer, "", 200, `"id":7`},
		{"abort ended", "POST", "/api/rollouts/8/abort", bearer, "", 409, "ended already"},
		{"abort by form", "POST", "/api/rollouts/7/abort", form, "", 303, ""},
		{"abort with a wrong form token", "POST", "/api/rollouts/7/abort", "wrong-form", "", 401, "admin token"},
		{"abort by GET", "GET", "/api/rollouts/7/abort", bearer, "", 405, ""},
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			switch tt.auth {
			case bearer:
				req.Header.Set("Authorization", "Bearer admin")
			case "bearer-curl":
				req.Header.Set("Authorization", "Bearer admin")
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			case form, "wrong-form":
				tok := "admin"
				if tt.auth != form {
					tok = "nope"
				}
				if body == "" {
					body = url.Values{"token": {tok}, "to": {"0123456"}}.Encode()
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
			}
			req.Body = io.NopCloser(strings.NewReader(body))
			req.ContentLength = int64(len(body))
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tt.wantStatus, got)
			}
			if !strings.Contains(string(got), tt.wantBody) {
				t.Errorf("body = %s, want it to contain %s", got, tt.wantBody)
			}
			if tt.wantStatus == http.StatusSeeOther && resp.Header.Get("Location") != "/rollouts/7" {
				t.Errorf("Location = %q, want /rollouts/7", resp.Header.Get("Location"))
			}
		})
	}
}

// TestRolloutAPIWithoutRollouts: a builder without rollouts answers 404
// on their routes, token or not.
func TestRolloutAPIWithoutRollouts(t *testing.T) {
	s := New(Deps{Config: &config.Config{}, Jobs: fakeJobs{}, State: fakeState{}, Reports: fakeState{}, AdminToken: []byte("admin")})
	req := httptest.NewRequest("GET", "/api/rollouts", nil)
	req.Header.Set("Authorization", "Bearer admin")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Fatalf("status = %d, want 404: %s", rec.Code, rec.Body)
	}
}

// recordingReports records the order of the host's state, the rollouts'
// report and the host.report event.
type recordingReports struct{ calls *[]string }

func (r recordingReports) Report(_ context.Context, host, _, result, _ string) error {
	*r.calls = append(*r.calls, "state "+host+" "+result)
	return nil
}

func (r recordingReports) Append(_ context.Context, typ string, _ any) (state.Event, error) {
	*r.calls = append(*r.calls, "event "+typ)
	return state.Event{}, nil
}

// TestReportMovesRolloutsBeforeItsEvent: an agent's report reaches the
// rollouts after the host's state is recorded and before the host.report
// event, so a halt it causes comes first in the event log; a rollout
// failure does not lose the report.
func TestReportMovesRolloutsBeforeItsEvent(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("rollouts fail %v", fail), func(t *testing.T) {
			var calls []string
			fake := fakeRollouts{report: func(host string, rep farmapi.Report) error {
				calls = append(calls, "rollouts "+host+" "+string(rep.Result))
				if fail {
					return errors.New("state is down")
				}
				return nil
			}}
			s := New(Deps{Config: &config.Config{}, Jobs: fakeJobs{}, State: fakeState{}, Reports: recordingReports{&calls},
				Agents: allowAgents{}, Rollouts: fake})
			body, _ := json.Marshal(farmapi.Report{Current: "/nix/store/aaaa-stolas", Result: farmapi.ResultFailed, Seq: 3})
			req := httptest.NewRequest("POST", "/api/hosts/stolas/report", strings.NewReader(string(body)))
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != http.StatusNoContent {
				t.Fatalf("status = %d, want 204: %s", rec.Code, rec.Body)
			}
			want := []string{"state stolas failed", "rollouts stolas failed", "event " + string(farmapi.HostReport)}
			if strings.Join(calls, "; ") != strings.Join(want, "; ") {
				t.Errorf("calls = %q, want %q", calls, want)
			}
		})
	}
}

// allowAgents lets every agent in.
type allowAgents struct{}

func (allowAgents) Authorized(string, *http.Request) bool { return true }

// hostsState is fakeState with hosts.
type hostsState struct {
	fakeState
	hosts []state.Host
}

func (s hostsState) Hosts(context.Context) ([]state.Host, error) { return s.hosts, nil }

// TestRolloutPages: the index lists the active rollouts, /rollouts/{id}
// shows the waves with each host's outcome (the agent's "waiting for
// window" and "installed for next boot" for a closure it was offered),
// why it halted, and resume/abort forms that post the admin token in their
// body, never in a URL; a form without the token acts on nothing.
func TestRolloutPages(t *testing.T) {
	const commit = "0123456789abcdef0123456789abcdef01234567"
	at := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	ro, err := rollout.New(commit, rollout.KindPush, []rollout.Target{
		{Host: "stolas", Wave: 0, StorePath: "/nix/store/aaaa-stolas"},
		{Host: "andras", Wave: 1, StorePath: "/nix/store/bbbb-andras"},
		{Host: "bael", Wave: 1, StorePath: "/nix/store/cccc-bael"},
		{Host: "paimon", Wave: 2, StorePath: "/nix/store/dddd-paimon"},
	}, at)
	if err != nil {
		t.Fatal(err)
	}
	ro.Hosts["stolas"].OfferedAt, ro.Hosts["stolas"].Outcome = &at, rollout.OutcomeFailed
	ro.Hosts["andras"].OfferedAt = &at
	ro.Hosts["bael"].OfferedAt = &at
	ro.Status, ro.Wave = rollout.StatusHalted, 1
	ro.Halt = &rollout.Halt{Host: "stolas", Wave: 0, Reason: rollout.HaltFailed, Detail: "health check <sshd> failed", At: at}
	rec := state.Rollout{ID: 7, Repo: "homelab", State: ro}
	hosts := []state.Host{
		{Name: "stolas", DesiredPath: "/nix/store/aaaa-stolas", LastResult: "failed", LastReason: "health check sshd failed"},
		{Name: "andras", DesiredPath: "/nix/store/bbbb-andras", LastResult: string(farmapi.ResultWaiting)},
		{Name: "bael", DesiredPath: "/nix/store/cccc-bael", LastResult: string(farmapi.ResultInstalled)},
	}
	var resumed []int64
	fake := fakeRollouts{
		get: func(id int64) (state.Rollout, error) {
			if id != 7 {
				return state.Rollout{}, state.ErrNotFound
			}
			return rec, nil
		},
		active: func() ([]state.Rollout, error) { return []state.Rollout{rec}, nil },
		resume: func(id int64) (state.Rollout, error) { resumed = append(resumed, id); return rec, nil },
	}
	s := New(Deps{Config: &config.Config{}, Jobs: fakeJobs{}, State: hostsState{hosts: hosts}, Reports: fakeState{},
		AdminToken: []byte("admin"), Rollouts: fake})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	code, page := get("/rollouts/7")
	if code != http.StatusOK {
		t.Fatalf("GET /rollouts/7 = %d: %s", code, page)
	}
	for _, want := range []string{
		`<span class="badge h-failed">halted</span>`,
		`Halted in wave 0 by stolas: failed (health check &lt;sshd&gt; failed)`,
		`data-wave="0"`, `data-wave="1"`, `data-wave="2"`,
		`<tr data-host="stolas">`, `data-outcome="failed"`, `health check sshd failed`,
		`data-outcome="waiting for window"`,
		`data-outcome="installed for next boot"`,
		`data-outcome="not offered yet"`,
		`<form class="rollout-action" method="post" action="/api/rollouts/7/resume">`,
		`<form class="rollout-action" method="post" action="/api/rollouts/7/abort">`,
		`<input type="password" name="token"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("rollout page lacks %s:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<sshd>") || strings.Contains(page, "token=") {
		t.Errorf("rollout page has unescaped text or a token in a URL:\n%s", page)
	}
	if code, page := get("/rollouts/9"); code != http.StatusNotFound {
		t.Errorf("GET /rollouts/9 = %d, want 404: %s", code, page)
	}
	code, page = get("/")
	if code != http.StatusOK || !strings.Contains(page, `<a href="/rollouts/7">7</a>`) || !strings.Contains(page, "halted in wave 0 by stolas") {
		t.Errorf("GET / = %d, want the rollout listed:\n%s", code, page)
	}

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(form url.Values) int {
		t.Helper()
		resp, err := client.PostForm(srv.URL+"/api/rollouts/7/resume", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(url.Values{}); code != http.StatusUnauthorized {
		t.Errorf("resume form without a token = %d, want 401", code)
	}
	if code := post(url.Values{"token": {"guess"}}); code != http.StatusUnauthorized {
		t.Errorf("resume form with a wrong token = %d, want 401", code)
	}
	if len(resumed) != 0 {
		t.Fatalf("resumed %v without the token", resumed)
	}
	if code := post(url.Values{"token": {"admin"}}); code != http.StatusSeeOther {
		t.Errorf("resume form = %d, want 303", code)
	}
	if len(resumed) != 1 || resumed[0] != 7 {
		t.Errorf("resumed %v, want [7]", resumed)
	}
}
