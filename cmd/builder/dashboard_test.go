package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/metrics"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/queue/sqlite"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/testenv"
)

// dashboardRoutes is the builder's own route table serving a.
func dashboardRoutes(a *farmAPI) http.Handler {
	log := slog.New(slog.DiscardHandler)
	s := newServer(config.Default(), a.q, nil, log)
	s.farm = &farm{state: a.state, api: a, metrics: metrics.New(a.q), log: log, later: make(chan laterEvent, 64)}
	return s.routes()
}

// Commits of the dashboard fixture, oldest first.
const (
	dashC1 = "1111111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	dashC2 = "2222222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	dashC3 = "3333333333cccccccccccccccccccccccccccccc"
)

// dashFixture is a farmAPI over a state seeded with two evaluations of a
// four-host fleet, and a queue holding a third commit not evaluated yet.
type dashFixture struct {
	api     *farmAPI
	state   *state.Store
	handler http.Handler
	evals   []state.Evaluation
	targets map[string]state.Target // "host@commit-number", e.g. "bravo@2"
}

func storePath(host string, n int) string {
	return fmt.Sprintf("/nix/store/%032d-nixos-system-%s-%d", n, host, n)
}

func newDashFixture(t *testing.T) *dashFixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := state.Open(ctx, filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	q, err := sqlite.Open(ctx, filepath.Join(dir, "queue.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	logDir := filepath.Join(dir, "logs")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Repositories: []config.Repository{{
		Name:    "homelab",
		Remotes: []config.Remote{{URL: "https://codeberg.org/alice/homelab"}},
	}}}
	f := &dashFixture{
		api:     &farmAPI{cfg: cfg, q: q, state: st, logDir: logDir, now: time.Now},
		state:   st,
		targets: make(map[string]state.Target),
	}
	f.handler = dashboardRoutes(f.api)

	var jobs []int64
	for _, c := range []string{dashC1, dashC2, dashC3} {
		res, err := q.Enqueue(ctx, queue.EnqueueRequest{
			Kind: queue.KindEval, Key: queue.EvalKey("homelab", c), Repo: "homelab", Branch: "main", Commit: c, Deploy: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, res.JobID)
	}
	type target struct{ host, system, state, reason, log string }
	for n, spec := range []struct {
		commit  string
		state   string
		targets []target
	}{
		{dashC1, state.EvalDone, []target{
			{"alpha", "x86_64-linux", state.TargetBuilt, "", "building alpha\n"},
			{"bravo", "x86_64-linux", state.TargetBuilt, "", "building bravo\n"},
			{"charlie", "aarch64-linux", state.TargetCached, "", ""},
			{"delta", "aarch64-darwin", state.TargetSkipped, "no builder for aarch64-darwin", ""},
		}},
		{dashC2, state.EvalRunning, []target{
			{"alpha", "x86_64-linux", state.TargetBuilt, "", "building alpha again\n"},
			{"bravo", "x86_64-linux", state.TargetFailed, "exit 1 <script>alert('reason')</script>",
				"building '/nix/store/xyz-bravo.drv'...\nerror: builder for bravo failed with exit code 1\n<script>alert('log')</script>\n"},
			{"charlie", "aarch64-linux", state.TargetBuilding, "", "building charlie under qemu\n"},
			{"delta", "aarch64-darwin", state.TargetSkipped, "no builder for aarch64-darwin", ""},
		}},
	} {
		e, _, err := st.StartEvaluation(ctx, state.Evaluation{JobID: jobs[n], Repo: "homelab", Branch: "main", Commit: spec.commit, Deploy: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range spec.targets {
			got, err := st.PutTarget(ctx, state.Target{EvalID: e.ID, Host: tt.host, Kind: "nixos", System: tt.system,
				DrvPath: "/nix/store/" + strings.Repeat("d", 32) + "-" + tt.host + ".drv", OutPath: storePath(tt.host, n+1), State: state.TargetPending})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.SetTargetState(ctx, got.ID, tt.state, tt.reason); err != nil {
				t.Fatal(err)
			}
			if tt.log != "" {
				if err := os.WriteFile(f.logPath(got.ID), []byte(tt.log), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got.State, got.Reason = tt.state, tt.reason
			f.targets[tt.host+"@"+strconv.Itoa(n+1)] = got
		}
		if spec.state != state.EvalRunning {
			if err := st.FinishEvaluation(ctx, e.ID, spec.state, "", ""); err != nil {
				t.Fatal(err)
			}
		}
		f.evals = append(f.evals, e)
	}

	// alpha runs what it should; bravo failed to switch to commit 1's closure.
	for seq, h := range []string{"alpha", "bravo"} {
		if err := st.SetDesired(ctx, h, storePath(h, 1), dashC1, uint64(seq+1), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Report(ctx, "alpha", storePath("alpha", 1), "switched", ""); err != nil {
		t.Fatal(err)
	}
	if err := st.Report(ctx, "bravo", storePath("bravo", 0), "failed", "health check failed"); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *dashFixture) logPath(id int64) string {
	return filepath.Join(f.api.logDir, strconv.FormatInt(id, 10)+".log")
}

func (f *dashFixture) get(t *testing.T, path string) (*http.Response, string) {
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
	f := newDashFixture(t)
	ctx := context.Background()
	// A job queued after the fixture's third (never evaluated) gets an id
	// above its evaluation's.
	const commit = "4444444444dddddddddddddddddddddddddddddd"
	res0, err := f.api.q.Enqueue(ctx, queue.EnqueueRequest{Kind: queue.KindEval, Key: "homelab@" + commit, Repo: "homelab",
		Branch: "main", Commit: commit, Remote: queue.Remote{Forge: "github", URL: "https://github.com/alice/homelab"}})
	if err != nil {
		t.Fatal(err)
	}
	ev, _, err := f.state.StartEvaluation(ctx, state.Evaluation{JobID: res0.JobID, Repo: "homelab", Branch: "main", Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.state.PutTarget(ctx, state.Target{EvalID: ev.ID, Host: "alpha", System: "x86_64-linux", State: state.TargetPending}); err != nil {
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

func TestDashboardPages(t *testing.T) {
	f := newDashFixture(t)
	bravo2, charlie2, alpha1 := f.targets["bravo@2"], f.targets["charlie@2"], f.targets["alpha@1"]
	for _, tc := range []struct {
		name     string
		path     string
		status   int
		want     []string
		dontWant []string
	}{
		{
			name: "dashboard", path: "/", status: http.StatusOK,
			want: []string{
				`<table id="matrix"`,
				fmt.Sprintf(`<td class="s-failed"><a href="/targets/%d" data-host="bravo" data-state="failed"`, bravo2.ID),
				fmt.Sprintf(`<td class="s-building"><a href="/targets/%d" data-host="charlie"`, charlie2.ID),
				fmt.Sprintf(`<td class="s-built"><a href="/targets/%d" data-host="alpha"`, alpha1.ID),
				`<code>2222222222</code>`, `<code>1111111111</code>`,
				`href="https://codeberg.org/alice/homelab/commit/` + dashC2 + `"`,
				`1 failed`, `1 building`, `2 built`,
				`job 3`,                // queued, not evaluated yet
				`data-refresh=`,        // an evaluation is running
				`&lt;script&gt;alert(`, // a reason, escaped in the cell's title
			},
			dontWant: []string{`<script>alert`},
		},
		{
			name: "evaluation", path: fmt.Sprintf("/evaluations/%d", f.evals[1].ID), status: http.StatusOK,
			want: []string{
				`Evaluation 2`, `<span class="badge e-running">running</span>`, dashC2,
				fmt.Sprintf(`<a href="/targets/%d" data-host="bravo" data-state="failed">bravo</a>`, bravo2.ID),
				`no builder for aarch64-darwin`, `exit 1 &lt;script&gt;`,
				`nixos-system-charlie-2`,
			},
			dontWant: []string{`<script>alert`},
		},
		{
			name: "finished evaluation", path: fmt.Sprintf("/evaluations/%d", f.evals[0].ID), status: http.StatusOK,
			want:     []string{`<span class="badge e-done">done</span>`, `2 built`, `1 cached`},
			dontWant: []string{`data-refresh=`},
		},
		{name: "unknown evaluation", path: "/evaluations/999", status: http.StatusNotFound},
		{
			name: "failed target", path: fmt.Sprintf("/targets/%d", bravo2.ID), status: http.StatusOK,
			want: []string{
				`<span id="state" class="badge s-failed"`, `error: builder for bravo failed with exit code 1`,
				`&lt;script&gt;alert(&#39;log&#39;)&lt;/script&gt;`, `x86_64-linux (nixos)`,
				`/nix/store/dddddddddddddddddddddddddddddddd-bravo.drv`, storePath("bravo", 2),
				fmt.Sprintf(`href="/evaluations/%d"`, f.evals[1].ID),
			},
			dontWant: []string{`<script>alert`, `data-follow`},
		},
		{
			name: "building target", path: fmt.Sprintf("/targets/%d", charlie2.ID), status: http.StatusOK,
			want: []string{
				fmt.Sprintf(`data-follow="/api/targets/%d/log?follow=1"`, charlie2.ID),
				`building charlie under qemu`, `Following the build`,
			},
		},
		{
			name: "skipped target without log", path: fmt.Sprintf("/targets/%d", f.targets["delta@2"].ID), status: http.StatusOK,
			want: []string{`<pre id="log" class="log">no builder for aarch64-darwin</pre>`},
		},
		{name: "unknown target", path: "/targets/999", status: http.StatusNotFound},
		{
			name: "hosts", path: "/hosts", status: http.StatusOK,
			want: []string{
				`<tr data-host="alpha">`, `<span class="badge h-ok">up to date</span>`,
				`<span class="badge h-failed">behind: failed</span>`, `health check failed`,
				`<tr data-host="charlie">`, `<span class="badge h-none">not deployed</span>`,
				fmt.Sprintf(`<a class="badge s-failed" href="/targets/%d"`, bravo2.ID),
				`<tr data-host="delta">`, `seq 2`, `commit <code title="` + dashC1 + `">1111111111</code>`,
				`data-refresh=`, // charlie is building
			},
			dontWant: []string{`<script>alert`},
		},
		{name: "bad n", path: "/?n=x", status: http.StatusBadRequest},
		{name: "stylesheet", path: "/static/style.css?v=" + staticVersion, status: http.StatusOK, want: []string{".s-failed"}},
		{name: "script", path: "/static/dashboard.js", status: http.StatusOK, want: []string{"followLog"}},
		{name: "static directory", path: "/static/", status: http.StatusNotFound},
		{name: "unknown static", path: "/static/nope.css", status: http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := f.get(t, tc.path)
			if res.StatusCode != tc.status {
				t.Fatalf("GET %s: status %d, want %d\n%s", tc.path, res.StatusCode, tc.status, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("GET %s: body lacks %q\n%s", tc.path, w, body)
				}
			}
			for _, w := range tc.dontWant {
				if strings.Contains(body, w) {
					t.Errorf("GET %s: body has %q", tc.path, w)
				}
			}
			if tc.status == http.StatusOK && !strings.HasPrefix(tc.path, "/static/") {
				if got := res.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
					t.Errorf("GET %s: Content-Type %q", tc.path, got)
				}
				if got := res.Header.Get("Content-Security-Policy"); !strings.Contains(got, "script-src 'self'") {
					t.Errorf("GET %s: Content-Security-Policy %q", tc.path, got)
				}
			}
		})
	}
	t.Run("static caching", func(t *testing.T) {
		for path, want := range map[string]string{
			"/static/style.css?v=" + staticVersion: "public, max-age=31536000, immutable",
			"/static/style.css":                    "no-cache",
		} {
			res, _ := f.get(t, path)
			if got := res.Header.Get("Cache-Control"); got != want {
				t.Errorf("GET %s: Cache-Control %q, want %q", path, got, want)
			}
			if got := res.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/css") {
				t.Errorf("GET %s: Content-Type %q, want text/css", path, got)
			}
		}
	})
}

func TestBuildMatrix(t *testing.T) {
	// Evaluations newest first: 3 re-evaluates commit b after 2 was superseded.
	evals := []state.Evaluation{
		{ID: 3, Repo: "r", Commit: "b"},
		{ID: 2, Repo: "r", Commit: "b", State: state.EvalSuperseded},
		{ID: 1, Repo: "r", Commit: "a"},
	}
	targets := map[int64][]state.Target{
		3: {{ID: 30, Host: "x", State: state.TargetBuilt}},
		2: {{ID: 20, Host: "x", State: state.TargetPending}, {ID: 21, Host: "y", State: state.TargetFailed}},
		1: {{ID: 10, Host: "x", State: state.TargetBuilt}, {ID: 11, Host: "y", State: state.TargetBuilt}},
	}
	hosts := []state.Host{{Name: "z"}, {Name: "x"}}
	cols, rows := buildMatrix(evals, targets, hosts, 12)
	ids := func(cells []*state.Target) []int64 {
		var out []int64
		for _, c := range cells {
			if c == nil {
				out = append(out, 0)
			} else {
				out = append(out, c.ID)
			}
		}
		return out
	}
	got := fmt.Sprint(len(cols), cols[0].Eval.ID, cols[1].Eval.ID)
	if want := "2 3 1"; got != want {
		t.Errorf("columns (count, eval ids) = %s, want %s", got, want)
	}
	var gotRows []string
	for _, r := range rows {
		gotRows = append(gotRows, fmt.Sprint(r.Host, ids(r.Cells)))
	}
	if got, want := strings.Join(gotRows, " "), "x[30 10] y[21 11] z[0 0]"; got != want {
		t.Errorf("rows = %s, want %s", got, want)
	}

	cols, rows = buildMatrix(evals, targets, nil, 1)
	if len(cols) != 1 || len(rows) != 2 || len(rows[0].Cells) != 1 {
		t.Errorf("with one column: %d columns, %d rows, want 1 column and 2 rows of 1 cell", len(cols), len(rows))
	}
}

func TestHostStatus(t *testing.T) {
	seen := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		host        state.Host
		status, cls string
	}{
		{state.Host{}, "not deployed", "none"},
		{state.Host{DesiredPath: "/nix/store/a"}, "never reported", "pending"},
		{state.Host{DesiredPath: "/nix/store/a", CurrentPath: "/nix/store/a", LastSeen: seen}, "up to date", "ok"},
		{state.Host{DesiredPath: "/nix/store/a", CurrentPath: "/nix/store/b", LastSeen: seen, LastResult: "rolled back"}, "behind: rolled back", "failed"},
		{state.Host{DesiredPath: "/nix/store/a", CurrentPath: "/nix/store/b", LastSeen: seen, LastResult: "up-to-date"}, "behind", "behind"},
	} {
		status, cls := hostStatus(tc.host)
		if status != tc.status || cls != tc.cls {
			t.Errorf("hostStatus(%+v) = %q, %q; want %q, %q", tc.host, status, cls, tc.status, tc.cls)
		}
	}
}

func TestReadTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, []byte("line one\nline two\nline three\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		max     int64
		want    string
		skipped int64
	}{
		{100, "line one\nline two\nline three\n", 0},
		{15, "line three\n", 18}, // cut inside "line two": start at the next line
	} {
		got, skipped, err := readTail(path, tc.max)
		if err != nil || got != tc.want || skipped != tc.skipped {
			t.Errorf("readTail(max %d) = %q, %d, %v; want %q, %d", tc.max, got, skipped, err, tc.want, tc.skipped)
		}
	}
}

func TestStoreName(t *testing.T) {
	for in, want := range map[string]string{
		"/nix/store/abcdefghijklmnopqrstuvwxyz012345-nixos-system-alpha": "abcdefgh…-nixos-system-alpha",
		"/elsewhere/x": "/elsewhere/x",
		"":             "",
	} {
		if got := storeName(in); got != want {
			t.Errorf("storeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDashboardEmpty(t *testing.T) {
	st, err := state.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := dashboardRoutes(&farmAPI{state: st, logDir: t.TempDir()}) // no queue, no clock
	for path, want := range map[string]string{
		"/":      "Nothing evaluated yet",
		"/hosts": "no hosts yet",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("GET %s: status %d, want 200 with %q\n%s", path, rec.Code, want, rec.Body)
		}
	}
}

// TestDashboardManyEvaluations checks that the dashboard stays a bounded
// amount of work with hundreds of evaluations in the state.
func TestDashboardManyEvaluations(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 300 evaluations")
	}
	ctx := context.Background()
	st, err := state.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range 300 {
		e, _, err := st.StartEvaluation(ctx, state.Evaluation{JobID: int64(i + 1), Repo: "homelab", Branch: "main", Commit: fmt.Sprintf("%040x", i)})
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []string{"alpha", "bravo", "charlie"} {
			if _, err := st.PutTarget(ctx, state.Target{EvalID: e.ID, Host: h, System: "x86_64-linux", State: state.TargetBuilt}); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.FinishEvaluation(ctx, e.ID, state.EvalDone, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	h := dashboardRoutes(&farmAPI{state: st, logDir: t.TempDir(), now: time.Now})
	for _, tc := range []struct {
		path      string
		rows      int
		more      string
		matrixCol int
	}{
		{"/", dashEvaluations, `href="/?n=60"`, dashColumns},
		{"/?n=290", 290, `href="/?n=500"`, dashColumns},
		{"/?n=100000", 300, "", dashColumns},
	} {
		start := time.Now()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		took := time.Since(start)
		body := rec.Body.String()
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: status %d\n%s", tc.path, rec.Code, body)
		}
		evalTable := body[strings.Index(body, `<table id="evaluations"`):]
		if got := strings.Count(evalTable, `<tr class="e-done">`); got != tc.rows {
			t.Errorf("GET %s: %d evaluation rows, want %d", tc.path, got, tc.rows)
		}
		if got := strings.Count(body, `data-host="alpha"`); got != tc.matrixCol {
			t.Errorf("GET %s: %d matrix cells for alpha, want %d", tc.path, got, tc.matrixCol)
		}
		if tc.more != "" && !strings.Contains(body, tc.more) {
			t.Errorf("GET %s: no %s link", tc.path, tc.more)
		}
		if tc.more == "" && strings.Contains(body, "Show more") {
			t.Errorf("GET %s: a Show more link with everything shown", tc.path)
		}
		t.Logf("GET %s: %d bytes in %v", tc.path, len(body), took)
	}
}

// chromium finds Debian's chromium (scripts/setup-browser installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.Missing(t, "chromium is not installed (scripts/setup-browser)")
	return ""
}

// TestDashboardBrowser drives the dashboard in headless Chromium: the
// failed host's cell in the matrix shows failed, a click on it opens its
// build log, and the log of a running build follows what the build writes
// after the page has loaded.
func TestDashboardBrowser(t *testing.T) {
	exe := chromium(t)
	f := newDashFixture(t)
	srv := httptest.NewServer(f.handler) // listens on 127.0.0.1
	defer srv.Close()
	profile := t.TempDir()

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox, // as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("no-proxy-server", true),
		// Nothing but the test's server resolves.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()

	// Every console error, uncaught exception and CSP violation fails the test.
	consoleCtx, stopConsole := context.WithCancel(bctx)
	defer stopConsole()
	consoleDone := make(chan []string, 1)
	messages := chromedp.Console(consoleCtx)
	go func() {
		var bad []string
		for m, err := range messages {
			if err != nil {
				break
			}
			if strings.HasSuffix(m.URL, "/log?follow=1") && strings.Contains(m.Text, "404") {
				continue // a build that has not started has no log yet
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				bad = append(bad, fmt.Sprintf("%s %s:%d: %s", m.Type, m.URL, m.Line, m.Text))
			}
		}
		consoleDone <- bad
	}()

	bravo := f.targets["bravo@2"]
	cell := chromedp.CSS(fmt.Sprintf(`#matrix a[href="/targets/%d"]`, bravo.ID))
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(cell)); err != nil {
		t.Fatalf("open the dashboard: %v", err)
	}
	text, err := chromedp.Run(bctx, chromedp.Text(cell))
	if err != nil {
		t.Fatal(err)
	}
	class, err := chromedp.Run(bctx, chromedp.Evaluate[string](fmt.Sprintf(
		`document.querySelector(%q).parentElement.className`, string(cell))))
	if err != nil {
		t.Fatal(err)
	}
	if text != "failed" || class != "s-failed" {
		t.Errorf("bravo's cell at commit 2: text %q, class %q; want failed, s-failed", text, class)
	}

	// A click on the failed cell opens bravo's target page with its log.
	if err := chromedp.Do(bctx, chromedp.Click(cell), chromedp.WaitVisible(chromedp.CSS("pre#log"))); err != nil {
		t.Fatalf("click bravo's cell: %v", err)
	}
	loc, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%s/targets/%d", srv.URL, bravo.ID); loc != want {
		t.Errorf("after the click the browser is at %s, want %s", loc, want)
	}
	waitText(t, bctx, "#log", "error: builder for bravo failed with exit code 1")
	waitText(t, bctx, "#log", "<script>alert('log')</script>") // shown as text, not run
	waitText(t, bctx, "#state", "failed")

	// Charlie is still building: its page follows the log as it grows, and
	// shows the final state when the build ends.
	charlie := f.targets["charlie@2"]
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/"),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#matrix a[href="/targets/%d"]`, charlie.ID))),
		chromedp.WaitVisible(chromedp.CSS("pre#log[data-follow]"))); err != nil {
		t.Fatalf("open charlie's running build: %v", err)
	}
	waitText(t, bctx, "#log", "building charlie under qemu")
	waitText(t, bctx, "#log-status", "Following the build")
	appendFile(t, f.logPath(charlie.ID), "copying path '/nix/store/abc-charlie' after the page loaded\n")
	waitText(t, bctx, "#log", "after the page loaded")
	if err := f.state.SetTargetState(context.Background(), charlie.ID, state.TargetBuilt, ""); err != nil {
		t.Fatal(err)
	}
	waitText(t, bctx, "#state", "built")
	if got, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById("state").className`)); err != nil || got != "badge s-built" {
		t.Errorf("charlie's state badge class = %q, %v; want badge s-built", got, err)
	}
	waitText(t, bctx, "#log", "building charlie under qemu\ncopying path")
	waitText(t, bctx, "main dl.facts", "finished") // the page reloaded its facts

	// A page opened before the build starts has no log yet; it shows the
	// log once the build writes one.
	ctx2 := context.Background()
	echo, err := f.state.PutTarget(ctx2, state.Target{EvalID: f.evals[1].ID, Host: "echo", Kind: "nixos",
		System: "x86_64-linux", OutPath: storePath("echo", 2), State: state.TargetPending})
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(fmt.Sprintf("%s/targets/%d", srv.URL, echo.ID)),
		chromedp.WaitVisible(chromedp.CSS("pre#log[data-follow]"))); err != nil {
		t.Fatal(err)
	}
	waitText(t, bctx, "#log", "No build log yet.")
	if err := f.state.SetTargetState(ctx2, echo.ID, state.TargetBuilding, ""); err != nil {
		t.Fatal(err)
	}
	appendFile(t, f.logPath(echo.ID), "building echo\n")
	waitText(t, bctx, "#log", "building echo")
	waitText(t, bctx, "#state", "building")
	if err := f.state.SetTargetState(ctx2, echo.ID, state.TargetFailed, "exit 2"); err != nil {
		t.Fatal(err)
	}
	waitText(t, bctx, "#state", "failed")
	waitText(t, bctx, "#reason", "exit 2")

	// The dashboard refreshes itself while an evaluation runs.
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(cell)); err != nil {
		t.Fatal(err)
	}
	waitText(t, bctx, fmt.Sprintf(`#matrix a[href="/targets/%d"]`, charlie.ID), "built")
	if err := f.state.FinishEvaluation(context.Background(), f.evals[1].ID, state.EvalFailed, "", "bravo failed"); err != nil {
		t.Fatal(err)
	}
	waitText(t, bctx, "#evaluations tbody tr:first-child", "bravo failed")

	stopConsole()
	for _, m := range <-consoleDone {
		t.Errorf("browser console: %s", m)
	}
}

// waitText waits until the textContent of the element sel holds want.
func waitText(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	expr := fmt.Sprintf(`(document.querySelector(%q)?.textContent ?? "").includes(%q)`, sel, want)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q)?.textContent ?? "(none)"`, sel)))
		t.Fatalf("%s never showed %q: %v; it has %q", sel, want, err, got)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
}
