package dashboard_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/server"
	"github.com/homelab-farm/farm/internal/server/dashboard"
	"github.com/homelab-farm/farm/internal/server/servertest"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/testenv"
)

// routes is the builder's route table (server.New) over st and, unless
// nil, the queue q: the pages are tested where they are served.
func routes(st *state.Store, q server.Jobs) http.Handler {
	deps := server.Deps{Config: config.Default(), State: st, Reports: st, Jobs: q}
	if q == nil {
		deps.Jobs = noJobs{}
	}
	return server.New(deps).Handler()
}

// noJobs is a queue that holds nothing and takes nothing.
type noJobs struct{}

func (noJobs) Enqueue(context.Context, queue.EnqueueRequest) (queue.EnqueueResult, error) {
	return queue.EnqueueResult{}, errors.New("no queue")
}
func (noJobs) List(context.Context, queue.ListOptions) ([]queue.Job, error) { return nil, nil }
func (noJobs) Get(context.Context, int64) (queue.Job, error)                { return queue.Job{}, queue.ErrNotFound }

// fixture is the route table over the seeded state (servertest.Seed).
type fixture struct {
	*servertest.Seeded
	handler http.Handler
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	d := servertest.Seed(t)
	h := server.New(server.Deps{Config: d.Config, Jobs: d.Queue, State: d.State, Reports: d.State, LogDir: d.LogDir}).Handler()
	return &fixture{Seeded: d, handler: h}
}

func (f *fixture) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func TestDashboardPages(t *testing.T) {
	f := newFixture(t)
	bravo2, charlie2, alpha1 := f.Targets["bravo@2"], f.Targets["charlie@2"], f.Targets["alpha@1"]
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
				`href="https://codeberg.org/alice/homelab/commit/` + servertest.C2 + `"`,
				`1 failed`, `1 building`, `2 built`,
				`job 3`,                // queued, not evaluated yet
				`data-refresh=`,        // an evaluation is running
				`&lt;script&gt;alert(`, // a reason, escaped in the cell's title
			},
			dontWant: []string{`<script>alert`},
		},
		{
			name: "evaluation", path: fmt.Sprintf("/evaluations/%d", f.Evals[1].ID), status: http.StatusOK,
			want: []string{
				`Evaluation 2`, `<span class="badge e-running">running</span>`, servertest.C2,
				fmt.Sprintf(`<a href="/targets/%d" data-host="bravo" data-state="failed">bravo</a>`, bravo2.ID),
				`no builder for aarch64-darwin`, `exit 1 &lt;script&gt;`,
				`nixos-system-charlie-2`,
			},
			dontWant: []string{`<script>alert`},
		},
		{
			name: "finished evaluation", path: fmt.Sprintf("/evaluations/%d", f.Evals[0].ID), status: http.StatusOK,
			want:     []string{`<span class="badge e-done">done</span>`, `2 built`, `1 cached`},
			dontWant: []string{`data-refresh=`, `id="rollback"`, `href="/rollouts"`}, // this builder runs no rollouts
		},
		{name: "rollouts without rollouts", path: "/rollouts", status: http.StatusNotFound},
		{name: "unknown evaluation", path: "/evaluations/999", status: http.StatusNotFound},
		{
			name: "failed target", path: fmt.Sprintf("/targets/%d", bravo2.ID), status: http.StatusOK,
			want: []string{
				`<span id="state" class="badge s-failed"`, `error: builder for bravo failed with exit code 1`,
				`&lt;script&gt;alert(&#39;log&#39;)&lt;/script&gt;`, `x86_64-linux (nixos)`,
				`/nix/store/dddddddddddddddddddddddddddddddd-bravo.drv`, servertest.StorePath("bravo", 2),
				fmt.Sprintf(`href="/evaluations/%d"`, f.Evals[1].ID),
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
			name: "skipped target without log", path: fmt.Sprintf("/targets/%d", f.Targets["delta@2"].ID), status: http.StatusOK,
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
				`<tr data-host="delta">`, `seq 2`, `commit <code title="` + servertest.C1 + `">1111111111</code>`,
				`data-refresh=`, // charlie is building
			},
			dontWant: []string{`<script>alert`},
		},
		{name: "bad n", path: "/?n=x", status: http.StatusBadRequest},
		{name: "stylesheet", path: "/static/style.css?v=" + dashboard.StaticVersion, status: http.StatusOK, want: []string{".s-failed"}},
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
			"/static/style.css?v=" + dashboard.StaticVersion: "public, max-age=31536000, immutable",
			"/static/style.css": "no-cache",
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

func TestDashboardEmpty(t *testing.T) {
	st, err := state.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := routes(st, nil) // no queue
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
	h := routes(st, nil)
	for _, tc := range []struct {
		path      string
		rows      int
		more      string
		matrixCol int
	}{
		{"/", dashboard.Evaluations, `href="/?n=60"`, dashboard.Columns},
		{"/?n=290", 290, `href="/?n=500"`, dashboard.Columns},
		{"/?n=100000", 300, "", dashboard.Columns},
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
	f := newFixture(t)
	srv := httptest.NewServer(f.handler) // listens on 127.0.0.1
	defer srv.Close()
	bctx, consoleErrors := openBrowser(t)

	bravo := f.Targets["bravo@2"]
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
	charlie := f.Targets["charlie@2"]
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/"),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#matrix a[href="/targets/%d"]`, charlie.ID))),
		chromedp.WaitVisible(chromedp.CSS("pre#log[data-follow]"))); err != nil {
		t.Fatalf("open charlie's running build: %v", err)
	}
	waitText(t, bctx, "#log", "building charlie under qemu")
	waitText(t, bctx, "#log-status", "Following the build")
	servertest.AppendFile(t, f.LogPath(charlie.ID), "copying path '/nix/store/abc-charlie' after the page loaded\n")
	waitText(t, bctx, "#log", "after the page loaded")
	if err := f.State.SetTargetState(context.Background(), charlie.ID, state.TargetBuilt, ""); err != nil {
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
	echo, err := f.State.PutTarget(ctx2, state.Target{EvalID: f.Evals[1].ID, Host: "echo", Kind: "nixos",
		System: "x86_64-linux", OutPath: servertest.StorePath("echo", 2), State: state.TargetPending})
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(fmt.Sprintf("%s/targets/%d", srv.URL, echo.ID)),
		chromedp.WaitVisible(chromedp.CSS("pre#log[data-follow]"))); err != nil {
		t.Fatal(err)
	}
	waitText(t, bctx, "#log", "No build log yet.")
	if err := f.State.SetTargetState(ctx2, echo.ID, state.TargetBuilding, ""); err != nil {
		t.Fatal(err)
	}
	servertest.AppendFile(t, f.LogPath(echo.ID), "building echo\n")
	waitText(t, bctx, "#log", "building echo")
	waitText(t, bctx, "#state", "building")
	if err := f.State.SetTargetState(ctx2, echo.ID, state.TargetFailed, "exit 2"); err != nil {
		t.Fatal(err)
	}
	waitText(t, bctx, "#state", "failed")
	waitText(t, bctx, "#reason", "exit 2")

	// The dashboard refreshes itself while an evaluation runs.
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(cell)); err != nil {
		t.Fatal(err)
	}
	waitText(t, bctx, fmt.Sprintf(`#matrix a[href="/targets/%d"]`, charlie.ID), "built")
	if err := f.State.FinishEvaluation(context.Background(), f.Evals[1].ID, state.EvalFailed, "", "bravo failed"); err != nil {
		t.Fatal(err)
	}
	waitText(t, bctx, "#evaluations tbody tr:first-child", "bravo failed")

	for _, m := range consoleErrors() {
		t.Errorf("browser console: %s", m)
	}
}

// openBrowser starts headless Chromium for the test, which reaches only
// 127.0.0.1. consoleErrors stops listening to the console and returns
// every error, uncaught exception and CSP violation it printed.
func openBrowser(t *testing.T) (bctx context.Context, consoleErrors func() []string) {
	t.Helper()
	exe := chromium(t)
	profile := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
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
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)

	consoleCtx, stopConsole := context.WithCancel(bctx)
	t.Cleanup(stopConsole)
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
	return bctx, func() []string {
		stopConsole()
		return <-consoleDone
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
