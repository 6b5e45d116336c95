package dashboard_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/file"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/rollout"
	"github.com/homelab-farm/farm/internal/server"
	"github.com/homelab-farm/farm/internal/server/servertest"
	"github.com/homelab-farm/farm/internal/state"
)

// rollbackFixture is the route table over the seeded state with real
// rollouts (pipeline.Rollouts on that state, a directory cache, a deploy
// key): commit 1 was rolled out to alpha (wave 0) and bravo (wave 1).
type rollbackFixture struct {
	*servertest.Seeded
	rollouts *pipeline.Rollouts
	cache    cache.Backend
	srv      *httptest.Server
	pushed   state.Rollout // commit 1's rollout
}

const adminToken = "s3cret-admin"

func newRollbackFixture(t *testing.T) *rollbackFixture {
	t.Helper()
	ctx := context.Background()
	d := servertest.Seed(t)
	b, err := file.Open(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := cache.GenerateKey("farm-test-deploy-1")
	if err != nil {
		t.Fatal(err)
	}
	r := &pipeline.Rollouts{State: d.State, Signer: deploy.KeySigner{Key: key}, Cache: b, CacheURL: "http://127.0.0.1:1/nix-cache"}
	f := &rollbackFixture{Seeded: d, rollouts: r, cache: b}
	for range 2 { // the seed's manifests have seqs 1 and 2
		if _, err := d.State.NextSeq(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var c1 []state.Target
	for _, h := range []string{"alpha", "bravo", "charlie", "delta"} {
		c1 = append(c1, d.Targets[h+"@1"])
	}
	// charlie was built but farm.deploy does not list it; delta was skipped.
	ro, ok, err := r.Start(ctx, pipeline.Push{
		Job:      queue.Job{Repo: "homelab", Branch: "main", Commit: servertest.C1, Deploy: true},
		Targets:  c1,
		Settings: map[string]nix.DeploySettings{"alpha": {Wave: 0}, "bravo": {Wave: 1}, "delta": {Wave: 1}},
	})
	if err != nil || !ok {
		t.Fatalf("start commit 1's rollout: %v, %v", ok, err)
	}
	f.pushed = ro
	h := server.New(server.Deps{Config: d.Config, Jobs: d.Queue, State: d.State, Reports: d.State, LogDir: d.LogDir,
		AdminToken: []byte(adminToken), Rollouts: r}).Handler()
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

// cached puts host's closure at commit n into the cache (a narinfo is what
// a rollback looks for).
func (f *rollbackFixture) cached(t *testing.T, host string, n int) {
	t.Helper()
	p := servertest.StorePath(host, n)
	info := "StorePath: " + p + "\n"
	if err := f.cache.Put(context.Background(), cache.NarInfoKey(p), strings.NewReader(info), int64(len(info))); err != nil {
		t.Fatal(err)
	}
}

func (f *rollbackFixture) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(f.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// postForm posts form to path as a browser does, without following the
// redirect.
func (f *rollbackFixture) postForm(t *testing.T, path string, form url.Values) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// rollouts are every rollout, newest first.
func (f *rollbackFixture) all(t *testing.T) []state.Rollout {
	t.Helper()
	ros, err := f.State.Rollouts(context.Background(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	return ros
}

func hostsOf(ro state.Rollout) []string {
	var out []string
	for _, t := range ro.State.Targets {
		out = append(out, t.Host)
	}
	return out
}

// TestRollbackForm: a finished deploy evaluation's page offers a rollback
// to its commit, with a checkbox per host its rollout deployed; the form
// posted with the admin token starts a rollback of the ticked hosts and
// redirects to its page; without the right token, or refused (a closure
// the cache lost, a commit never deployed), it starts nothing and says
// why; the JSON API answers as before.
func TestRollbackForm(t *testing.T) {
	f := newRollbackFixture(t)
	c1Eval := "/evaluations/" + strconv.FormatInt(f.Evals[0].ID, 10)

	code, page := f.get(t, c1Eval)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d: %s", c1Eval, code, page)
	}
	for _, want := range []string{
		`<form id="rollback" class="rollout-action" method="post" action="/api/rollouts">`,
		`<input type="hidden" name="to" value="` + servertest.C1 + `">`,
		`<input type="hidden" name="repo" value="homelab">`,
		`<input type="checkbox" name="host" value="alpha">`,
		`<input type="checkbox" name="host" value="bravo">`,
		`<input type="password" name="token"`,
		`<a href="/rollouts"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("evaluation page lacks %s:\n%s", want, page)
		}
	}
	for _, host := range []string{"charlie", "delta"} { // not deployed, not built
		if strings.Contains(page, `name="host" value="`+host+`"`) {
			t.Errorf("evaluation page offers to roll back %s, which commit 1 did not deploy", host)
		}
	}
	if strings.Contains(page, "data-refresh") {
		t.Errorf("the page with the rollback form refreshes (it would wipe the token)")
	}
	if code, page := f.get(t, "/evaluations/"+strconv.FormatInt(f.Evals[1].ID, 10)); code != http.StatusOK || strings.Contains(page, `id="rollback"`) {
		t.Errorf("GET of the running evaluation = %d, want no rollback form:\n%s", code, page)
	}

	before := len(f.all(t))
	form := func(token string, hosts ...string) url.Values {
		return url.Values{"to": {servertest.C1}, "repo": {"homelab"}, "host": hosts, "token": {token}}
	}
	// Refused: nothing starts, the catalogue's message is shown.
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		want   string
	}{
		{"no token", url.Values{"to": {servertest.C1}, "host": {"bravo"}}, http.StatusUnauthorized, "bad or missing admin token"},
		{"wrong token", form("guess", "bravo"), http.StatusUnauthorized, "bad or missing admin token"},
		{"closure not cached", form(adminToken, "bravo"), http.StatusConflict, "no longer in the binary cache"},
		{"never deployed", url.Values{"to": {"2222222222"}, "token": {adminToken}}, http.StatusConflict, "no deploy of a commit 2222222222 has finished"},
		{"host without a closure there", form(adminToken, "charlie", "delta"), http.StatusConflict, "host delta has no closure at commit"},
		{"hostile host", form(adminToken, `<img src=x onerror=alert(1)>`), http.StatusConflict, "&lt;img src=x onerror=alert(1)&gt;"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := f.postForm(t, "/api/rollouts", tc.form)
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
				t.Errorf("POST = %d %s, want %d with %q", resp.StatusCode, b, tc.status, tc.want)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("a browser's refused form is answered %s, want an HTML page", ct)
			}
			if strings.Contains(string(b), "<img") {
				t.Errorf("the error page has the host name unescaped: %s", b)
			}
			if got := len(f.all(t)); got != before {
				t.Errorf("%d rollouts after a refused rollback, want %d", got, before)
			}
		})
	}

	// The right token, bravo ticked, its closure cached: a rollback of
	// bravo alone, with a new manifest of a higher seq.
	f.cached(t, "bravo", 1)
	seqBefore := f.host(t, "bravo").DesiredSeq
	resp := f.postForm(t, "/api/rollouts", form(adminToken, "bravo"))
	resp.Body.Close()
	ros := f.all(t)
	if len(ros) != before+1 {
		t.Fatalf("%d rollouts after the form, want %d", len(ros), before+1)
	}
	back := ros[0]
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/rollouts/"+strconv.FormatInt(back.ID, 10) {
		t.Errorf("POST = %d to %q, want 303 to /rollouts/%d", resp.StatusCode, resp.Header.Get("Location"), back.ID)
	}
	if back.State.Kind != rollout.KindRollback || back.State.Commit != servertest.C1 || !slices.Equal(hostsOf(back), []string{"bravo"}) {
		t.Errorf("started %s of %.10s to %v, want a rollback of bravo to commit 1", back.State.Kind, back.State.Commit, hostsOf(back))
	}
	if h := f.host(t, "bravo"); h.DesiredSeq <= seqBefore || h.DesiredPath != servertest.StorePath("bravo", 1) {
		t.Errorf("bravo wants %s at seq %d, want commit 1's closure at a seq above %d", h.DesiredPath, h.DesiredSeq, seqBefore)
	}
	if code, page := f.get(t, "/rollouts/"+strconv.FormatInt(back.ID, 10)); code != http.StatusOK || !strings.Contains(page, "rollback of homelab") {
		t.Errorf("the redirect's page = %d:\n%s", code, page)
	}

	// No host ticked: every host commit 1's rollout deployed.
	f.cached(t, "alpha", 1)
	resp = f.postForm(t, "/api/rollouts", form(adminToken))
	resp.Body.Close()
	if all := f.all(t)[0]; resp.StatusCode != http.StatusSeeOther || !slices.Equal(hostsOf(all), []string{"alpha", "bravo"}) {
		t.Errorf("POST with no host ticked = %d, rolled back %v; want 303 and alpha, bravo", resp.StatusCode, hostsOf(all))
	}

	// A JSON client with the bearer token, as `builder rollback`.
	code, body := servertest.Request(t, http.MethodPost, f.srv.URL+"/api/rollouts", adminToken, `{"to":"`+servertest.C1[:10]+`","hosts":["alpha"]}`)
	var got farmapi.Rollout
	if err := json.Unmarshal(body, &got); code != http.StatusCreated || err != nil || got.Kind != "rollback" || len(got.Hosts) != 1 || got.Hosts[0].Host != "alpha" {
		t.Errorf("JSON rollback = %d %s, want 201 with a rollback of alpha", code, body)
	}
	if code, body := servertest.Request(t, http.MethodPost, f.srv.URL+"/api/rollouts", "", `{"to":"`+servertest.C1+`"}`); code != http.StatusUnauthorized || !strings.HasPrefix(strings.TrimSpace(string(body)), "{") {
		t.Errorf("JSON rollback without a token = %d %s, want 401 in JSON", code, body)
	}

	// The list: every rollout, newest first, with kind and status.
	code, page = f.get(t, "/rollouts")
	if code != http.StatusOK {
		t.Fatalf("GET /rollouts = %d: %s", code, page)
	}
	all := f.all(t)
	last := -1
	for _, ro := range all {
		row := `<tr data-rollout="` + strconv.FormatInt(ro.ID, 10) + `" data-status="` + string(ro.State.Status) + `" data-kind="` + string(ro.State.Kind) + `">`
		i := strings.Index(page, row)
		if i < 0 || i < last {
			t.Errorf("/rollouts lacks %s in order (newest first):\n%s", row, page)
		}
		last = i
	}
	for _, want := range []string{`<a href="/rollouts/` + strconv.FormatInt(f.pushed.ID, 10) + `">`, "superseded by " + servertest.C1,
		`<form id="rollback" class="rollout-action" method="post" action="/api/rollouts">`, `name="to"`, `aria-current="page">Rollouts</a>`} {
		if !strings.Contains(page, want) {
			t.Errorf("/rollouts lacks %s:\n%s", want, page)
		}
	}
	if len(all) != before+3 {
		t.Errorf("%d rollouts, want %d", len(all), before+3)
	}
}

// TestRollbackFormEscapes: what a push names (repository, commit, host
// names) reaches the rollback form and the rollouts list as text, never
// as markup; a host name a rollback would refuse is not offered.
func TestRollbackFormEscapes(t *testing.T) {
	f := newRollbackFixture(t)
	ctx := context.Background()
	const (
		repo   = `home"lab<b>x</b>`
		commit = `c0ffee"><script>alert('commit')</script>`
		host   = `<img src=x onerror=alert('host')>`
	)
	ev, _, err := f.State.StartEvaluation(ctx, state.Evaluation{JobID: 99, Repo: repo, Branch: "main", Commit: commit, Deploy: true})
	if err != nil {
		t.Fatal(err)
	}
	var ts []state.Target
	for _, h := range []string{host, "echo"} {
		tg, err := f.State.PutTarget(ctx, state.Target{EvalID: ev.ID, Host: h, System: "x86_64-linux", OutPath: servertest.StorePath("echo", 7), State: state.TargetBuilt})
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, tg)
	}
	if err := f.State.FinishEvaluation(ctx, ev.ID, state.EvalDone, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := f.rollouts.Start(ctx, pipeline.Push{Job: queue.Job{Repo: repo, Branch: "main", Commit: commit, Deploy: true}, Targets: ts}); err != nil || !ok {
		t.Fatalf("start: %v, %v", ok, err)
	}

	code, page := f.get(t, "/evaluations/"+strconv.FormatInt(ev.ID, 10))
	if code != http.StatusOK {
		t.Fatalf("GET evaluation = %d: %s", code, page)
	}
	for _, want := range []string{
		`<input type="hidden" name="to" value="c0ffee&#34;&gt;&lt;script&gt;alert(&#39;commit&#39;)&lt;/script&gt;">`,
		`<input type="hidden" name="repo" value="home&#34;lab&lt;b&gt;x&lt;/b&gt;">`,
		`<input type="checkbox" name="host" value="echo">`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("evaluation page lacks %s:\n%s", want, page)
		}
	}
	if n := strings.Count(page, `name="host"`); n != 1 {
		t.Errorf("%d host checkboxes, want 1 (the invalid host name is not offered)", n)
	}
	code, list := f.get(t, "/rollouts")
	if code != http.StatusOK || !strings.Contains(list, "home&#34;lab&lt;b&gt;x&lt;/b&gt;") {
		t.Errorf("GET /rollouts = %d, want the repository escaped:\n%s", code, list)
	}
	for name, p := range map[string]string{"evaluation": page, "rollouts": list} {
		for _, bad := range []string{"<script>alert", "<img src=x", "<b>x</b>", `value="c0ffee">`} {
			if strings.Contains(p, bad) {
				t.Errorf("%s page has %s unescaped:\n%s", name, bad, p)
			}
		}
	}
}

func (f *rollbackFixture) host(t *testing.T, name string) state.Host {
	t.Helper()
	h, err := f.State.Host(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestRollbackFormBrowser: in headless Chromium, the evaluation page's
// form, with one host ticked and the token typed in, starts a rollback of
// that host and lands on the new rollout's page; the page breaks no
// content security rule (the form posts to its own origin).
func TestRollbackFormBrowser(t *testing.T) {
	f := newRollbackFixture(t)
	f.cached(t, "bravo", 1)
	bctx, consoleErrors := openBrowser(t)
	before := len(f.all(t))

	page := f.srv.URL + "/evaluations/" + strconv.FormatInt(f.Evals[0].ID, 10)
	if err := chromedp.Do(bctx, chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.CSS(`#rollback`)),
		chromedp.Click(chromedp.CSS(`#rollback input[name="host"][value="bravo"]`)),
		chromedp.SendKeys(chromedp.CSS(`#rollback input[name="token"]`), adminToken),
		chromedp.Click(chromedp.CSS(`#rollback button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#rollout-status`)),
	); err != nil {
		t.Fatalf("roll back from the evaluation page: %v", err)
	}
	ros := f.all(t)
	if len(ros) != before+1 || ros[0].State.Kind != rollout.KindRollback || !slices.Equal(hostsOf(ros[0]), []string{"bravo"}) {
		t.Fatalf("rollouts after the form: %d, newest %s of %v; want one more, a rollback of bravo", len(ros), ros[0].State.Kind, hostsOf(ros[0]))
	}
	loc, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if want := f.srv.URL + "/rollouts/" + strconv.FormatInt(ros[0].ID, 10); loc != want {
		t.Errorf("after the form the browser is at %s, want %s", loc, want)
	}
	waitText(t, bctx, "h1", "rollback of homelab")
	for _, m := range consoleErrors() {
		t.Errorf("browser console: %s", m)
	}
}
