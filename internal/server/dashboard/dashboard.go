package dashboard

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/homelab-farm/farm/internal/closurediff"
	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/rollout"
	"github.com/homelab-farm/farm/internal/server/httperr"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/svgplot"
)

// State is what the pages read of the builder's state (*state.Store).
// Methods are called concurrently; a missing evaluation or target is
// state.ErrNotFound.
type State interface {
	Evaluations(ctx context.Context, limit int) ([]state.Evaluation, error)
	Evaluation(ctx context.Context, id int64) (state.Evaluation, error)
	Targets(ctx context.Context, evalID int64) ([]state.Target, error)
	Target(ctx context.Context, id int64) (state.Target, error)
	Hosts(ctx context.Context) ([]state.Host, error)
}

// Jobs lists the queue's jobs (queue.Queue), so that the list of
// evaluations shows pushes no worker has started yet.
type Jobs interface {
	List(ctx context.Context, opts queue.ListOptions) ([]queue.Job, error)
}

// Dashboard renders the pages. Its handlers read the route variable "id"
// (gorilla/mux) where a path carries one; internal/server mounts them.
type Dashboard struct {
	State State
	Jobs  Jobs // nil: only evaluations are listed
	// Repositories link commits to their first remote's web page.
	Repositories []config.Repository
	LogDir       string           // build logs, <target id>.log
	Diffs        Diffs            // recorded closure diffs; nil: none shown
	Now          func() time.Time // nil: time.Now
	// CacheHistory gives the cache page its history; nil: no such page.
	CacheHistory CacheHistory
	// Rollouts are shown on /, /rollouts and /rollouts/{id}, and deploy
	// evaluations offer a rollback to their commit; nil: none of it.
	Rollouts Rollouts
}

//go:embed web
var webFS embed.FS

// Limits that keep every page a handful of small queries, however long the
// builder's history.
const (
	dashEvaluations    = 30      // evaluations listed on / by default
	dashMaxEvaluations = 500     // at most, with ?n=
	dashColumns        = 12      // commits in the hosts-by-commits matrix
	dashLatestScan     = 30      // evaluations searched for a host's latest target
	dashLogTail        = 1 << 20 // bytes of a build log rendered into the page
)

var (
	staticFS      = mustSub(webFS, "web/static")
	staticVersion = hashFS(staticFS)
	pages         = parsePages("index", "evaluation", "target", "hosts", "cache", "rollout", "rollouts")
)

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// hashFS names the current version of the static files, so that their URLs
// change with them and can be cached for good.
func hashFS(f fs.FS) string {
	h := sha256.New()
	err := fs.WalkDir(f, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(f, p)
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
		return err
	})
	if err != nil {
		panic(err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// parsePages parses each page with the shared layout.
func parsePages(names ...string) map[string]*template.Template {
	funcs := template.FuncMap{
		"short":     shortCommit,
		"storeName": storeName,
		"when":      newStamp,
		"dur":       duration,
		"size":      func(n int64) string { return svgplot.Bytes(float64(n)) },
		"static":    func(name string) string { return "/static/" + name + "?v=" + staticVersion },
		"bytes":     closurediff.FormatBytes,
		"delta":     closurediff.FormatDelta,
		"versions":  versions,
	}
	out := make(map[string]*template.Template, len(names))
	for _, n := range names {
		out[n] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(webFS, "web/layout.html", "web/"+n+".html"))
	}
	return out
}

// page is what every template gets: the layout's fields and the page's own.
type page struct {
	Title string
	Nav   string // "evaluations", "hosts", "cache" or "rollouts": the highlighted link
	// Refresh makes the page reload its <main> every few seconds: set while
	// something shown is still in progress.
	Refresh bool
	// Rollouts shows the Rollouts link: the builder runs rollouts.
	Rollouts bool
	Now      time.Time
	Data     any
}

// render writes a page, or returns the error before anything is sent.
func (d *Dashboard) render(w http.ResponseWriter, name string, p page) error {
	p.Now = d.clock()
	p.Rollouts = d.Rollouts != nil
	var buf bytes.Buffer
	if err := pages[name].Execute(&buf, p); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	_, _ = buf.WriteTo(w)
	return nil
}

func (d *Dashboard) clock() time.Time {
	if d.Now == nil {
		return time.Now()
	}
	return d.Now()
}

// evalRow is one line of the evaluations list: an evaluation, or a queued
// or superseded job that never got one (ID 0).
type evalRow struct {
	state.Evaluation
	CommitURL string
	Counts    []stateCount
}

type stateCount struct {
	State string
	N     int
}

// matrixColumn is one commit: its newest evaluation.
type matrixColumn struct {
	Eval      state.Evaluation
	CommitURL string
}

type matrixRow struct {
	Host  string
	Cells []*state.Target // nil: no target for this host at this commit
}

type indexData struct {
	Evaluations []evalRow
	Columns     []matrixColumn
	Rows        []matrixRow
	More        int // ?n= that shows more, 0 when everything is shown
	// Summaries are the matrix cells' closure diff summaries, by target.
	Summaries map[int64]string
	Rollouts  []rolloutView // the active ones
}

// Index is GET /: the recent evaluations and the hosts-by-commits matrix.
func (d *Dashboard) Index(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	n := dashEvaluations
	if v := r.URL.Query().Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			return httperr.ErrBadPageSize.Wrap(err)
		}
		n = min(n, dashMaxEvaluations)
	}
	evals, err := d.State.Evaluations(ctx, n+1)
	if err != nil {
		return err
	}
	more := 0
	if len(evals) > n {
		evals, more = evals[:n], min(2*n, dashMaxEvaluations)
		if more == n {
			more = 0
		}
	}
	targets := make(map[int64][]state.Target, len(evals))
	for _, e := range evals {
		ts, err := d.State.Targets(ctx, e.ID)
		if err != nil {
			return err
		}
		targets[e.ID] = ts
	}

	var data indexData
	refresh := false
	withEval := make(map[int64]bool, len(evals))
	for _, e := range evals {
		withEval[e.JobID] = true
		data.Evaluations = append(data.Evaluations, evalRow{Evaluation: e, CommitURL: d.commitURL(e.Repo, e.Commit), Counts: countStates(targets[e.ID])})
		refresh = refresh || e.State == state.EvalRunning
	}
	if d.Jobs != nil {
		jobs, err := d.Jobs.List(ctx, queue.ListOptions{
			Kind:   queue.KindEval,
			States: []queue.State{queue.Queued, queue.Running, queue.Superseded, queue.Dead},
			Limit:  n,
		})
		if err != nil {
			return httperr.ErrQueueUnavailable.Wrap(err)
		}
		for _, j := range jobs {
			if withEval[j.ID] {
				continue
			}
			e := state.Evaluation{JobID: j.ID, Repo: j.Repo, Branch: j.Branch, Commit: j.Commit, Deploy: j.Deploy,
				State: string(j.State), Error: j.LastError, Created: j.CreatedAt}
			data.Evaluations = append(data.Evaluations, evalRow{Evaluation: e, CommitURL: d.commitURL(j.Repo, j.Commit)})
			refresh = refresh || j.State == queue.Queued || j.State == queue.Running
		}
		slices.SortStableFunc(data.Evaluations, func(x, y evalRow) int { return y.Created.Compare(x.Created) })
		if len(data.Evaluations) > n {
			data.Evaluations = data.Evaluations[:n]
		}
	}
	data.More = more

	hosts, err := d.State.Hosts(ctx)
	if err != nil {
		return err
	}
	data.Columns, data.Rows = buildMatrix(evals, targets, hosts, dashColumns)
	if data.Summaries, err = d.cellSummaries(ctx, data.Rows); err != nil {
		return err
	}
	if data.Rollouts, err = d.activeRollouts(ctx); err != nil {
		return err
	}
	for _, ro := range data.Rollouts {
		refresh = refresh || ro.Status == string(rollout.StatusProgressing)
	}
	for _, row := range data.Rows {
		for _, c := range row.Cells {
			refresh = refresh || (c != nil && live(c.State))
		}
	}
	for i := range data.Columns {
		c := &data.Columns[i]
		c.CommitURL = d.commitURL(c.Eval.Repo, c.Eval.Commit)
	}
	return d.render(w, "index", page{Title: "Evaluations", Nav: "evaluations", Refresh: refresh, Data: data})
}

// buildMatrix lays out hosts (rows) by commits (columns, newest first, at
// most cols). A commit evaluated more than once shows, for each host, the
// target of its newest evaluation that has one. Hosts known to the state
// but absent from these commits get a row of empty cells.
func buildMatrix(evals []state.Evaluation, targets map[int64][]state.Target, hosts []state.Host, cols int) ([]matrixColumn, []matrixRow) {
	type key struct{ repo, commit string }
	colOf := make(map[key]int)
	var columns []matrixColumn
	cells := make(map[string]map[int]*state.Target)
	for _, h := range hosts {
		cells[h.Name] = make(map[int]*state.Target)
	}
	for _, e := range evals { // newest first
		k := key{e.Repo, e.Commit}
		c, ok := colOf[k]
		if !ok {
			if len(columns) == cols {
				continue
			}
			c = len(columns)
			colOf[k] = c
			columns = append(columns, matrixColumn{Eval: e})
		}
		ts := targets[e.ID]
		for i := range ts {
			t := &ts[i]
			byCol := cells[t.Host]
			if byCol == nil {
				byCol = make(map[int]*state.Target)
				cells[t.Host] = byCol
			}
			if byCol[c] == nil {
				byCol[c] = t
			}
		}
	}
	rows := make([]matrixRow, 0, len(cells))
	for host, byCol := range cells {
		row := matrixRow{Host: host, Cells: make([]*state.Target, len(columns))}
		for c, t := range byCol {
			row.Cells[c] = t
		}
		rows = append(rows, row)
	}
	slices.SortFunc(rows, func(x, y matrixRow) int { return cmp.Compare(x.Host, y.Host) })
	return columns, rows
}

// stateOrder is the order states are counted in: trouble first.
var stateOrder = []string{state.TargetFailed, state.TargetBuilding, state.TargetPending,
	state.TargetBuilt, state.TargetCached, state.TargetSkipped}

func countStates(ts []state.Target) []stateCount {
	n := make(map[string]int)
	for _, t := range ts {
		n[t.State]++
	}
	var out []stateCount
	for _, s := range stateOrder {
		if n[s] > 0 {
			out = append(out, stateCount{s, n[s]})
			delete(n, s)
		}
	}
	for s, c := range n { // states this dashboard does not know yet
		out = append(out, stateCount{s, c})
	}
	return out
}

// live reports whether a target state may still change.
func live(s string) bool { return s == state.TargetPending || s == state.TargetBuilding }

type evaluationData struct {
	Eval      state.Evaluation
	CommitURL string
	Targets   []state.Target
	Counts    []stateCount
	// RollbackHosts are offered in the rollback form; none: no form.
	RollbackHosts []string
}

// Evaluation is GET /evaluations/{id}: one evaluation and its targets.
func (d *Dashboard) Evaluation(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		return httperr.ErrBadEvaluationID.Wrap(err)
	}
	e, err := d.State.Evaluation(r.Context(), id)
	if errors.Is(err, state.ErrNotFound) {
		return httperr.ErrNoEvaluation
	}
	if err != nil {
		return err
	}
	ts, err := d.State.Targets(r.Context(), id)
	if err != nil {
		return err
	}
	refresh := e.State == state.EvalRunning
	for _, t := range ts {
		refresh = refresh || live(t.State)
	}
	data := evaluationData{Eval: e, CommitURL: d.commitURL(e.Repo, e.Commit), Targets: ts, Counts: countStates(ts)}
	if data.RollbackHosts, err = d.rollbackHosts(r.Context(), e, ts); err != nil {
		return err
	}
	// A page with the rollback form does not refresh (it would wipe a
	// token being typed): it is offered only once the evaluation finished.
	return d.render(w, "evaluation", page{
		Title: fmt.Sprintf("Evaluation %d", e.ID), Nav: "evaluations", Refresh: refresh && len(data.RollbackHosts) == 0, Data: data,
	})
}

type targetData struct {
	Target    state.Target
	Eval      state.Evaluation
	CommitURL string
	Log       string
	// LogSkipped is how many bytes of the log's start are not shown.
	LogSkipped int64
	LogMissing bool
	Live       bool
	Diffs      []diffView
}

// Target is GET /targets/{id}: a host's target in one evaluation and
// its build log, which follows the build while it runs.
func (d *Dashboard) Target(w http.ResponseWriter, r *http.Request) error {
	t, err := d.targetFrom(r)
	if err != nil {
		return err
	}
	e, err := d.State.Evaluation(r.Context(), t.EvalID)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return err
	}
	td := targetData{Target: t, Eval: e, CommitURL: d.commitURL(e.Repo, e.Commit), Live: live(t.State)}
	if td.Diffs, err = d.diffViews(r, t, e); err != nil {
		return err
	}
	td.Log, td.LogSkipped, err = readTail(filepath.Join(d.LogDir, strconv.FormatInt(t.ID, 10)+".log"), dashLogTail)
	switch {
	case errors.Is(err, os.ErrNotExist):
		td.LogMissing = true
	case err != nil:
		return err
	}
	return d.render(w, "target", page{Title: t.Host + " · evaluation " + strconv.FormatInt(t.EvalID, 10), Nav: "evaluations", Data: td})
}

// targetFrom is the target the request's "id" names.
func (d *Dashboard) targetFrom(r *http.Request) (state.Target, error) {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		return state.Target{}, httperr.ErrBadTargetID.Wrap(err)
	}
	t, err := d.State.Target(r.Context(), id)
	if errors.Is(err, state.ErrNotFound) {
		return state.Target{}, httperr.ErrNoTarget
	}
	return t, err
}

// readTail returns the last max bytes of a file, from the start of a line,
// and how many bytes it left out.
func readTail(path string, max int64) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	var skipped int64
	if fi.Size() > max {
		skipped = fi.Size() - max
		if _, err := f.Seek(skipped, io.SeekStart); err != nil {
			return "", 0, err
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, max))
	if err != nil {
		return "", 0, err
	}
	if skipped > 0 {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b, skipped = b[i+1:], skipped+int64(i+1)
		}
	}
	return string(b), skipped, nil
}

// hostRow is a host as the hosts page shows it.
type hostRow struct {
	state.Host
	Status      string // what the host runs compared with what it should
	StatusClass string
	Latest      *state.Target // its newest target among recent evaluations
}

// Hosts is GET /hosts: each host's desired and current closure, its
// agent's last report and its latest build.
func (d *Dashboard) Hosts(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	hs, err := d.State.Hosts(ctx)
	if err != nil {
		return err
	}
	evals, err := d.State.Evaluations(ctx, dashLatestScan)
	if err != nil {
		return err
	}
	latest := make(map[string]*state.Target)
	for _, e := range evals { // newest first
		ts, err := d.State.Targets(ctx, e.ID)
		if err != nil {
			return err
		}
		for i := range ts {
			if latest[ts[i].Host] == nil {
				latest[ts[i].Host] = &ts[i]
			}
		}
	}
	rows := make([]hostRow, 0, len(hs))
	known := make(map[string]bool, len(hs))
	for _, h := range hs {
		known[h.Name] = true
		rows = append(rows, hostRow{Host: h, Latest: latest[h.Name]})
	}
	for name, t := range latest { // built but never deployed: no row in the hosts table yet
		if !known[name] {
			rows = append(rows, hostRow{Host: state.Host{Name: name}, Latest: t})
		}
	}
	slices.SortFunc(rows, func(x, y hostRow) int { return cmp.Compare(x.Name, y.Name) })
	refresh := false
	for i := range rows {
		rows[i].Status, rows[i].StatusClass = hostStatus(rows[i].Host)
		refresh = refresh || (rows[i].Latest != nil && live(rows[i].Latest.State))
	}
	return d.render(w, "hosts", page{Title: "Hosts", Nav: "hosts", Refresh: refresh, Data: rows})
}

// hostStatus compares what a host runs with what it should run.
func hostStatus(h state.Host) (status, class string) {
	switch {
	case h.DesiredPath == "":
		return "not deployed", "none"
	case h.CurrentPath == "" && h.LastSeen.IsZero():
		return "never reported", "pending"
	case h.CurrentPath == h.DesiredPath:
		return "up to date", "ok"
	case farmapi.Result(h.LastResult) == farmapi.ResultFailed || farmapi.Result(h.LastResult) == farmapi.ResultRolledBack:
		return "behind: " + h.LastResult, "failed"
	default:
		return "behind", "behind"
	}
}

// Static serves the dashboard's stylesheet and script. A URL carrying the
// current version is cached for good.
func (d *Dashboard) Static(w http.ResponseWriter, r *http.Request) error {
	name := strings.TrimPrefix(r.URL.Path, "/static/")
	if !fs.ValidPath(name) || name == "." {
		return httperr.ErrNotFound
	}
	if fi, err := fs.Stat(staticFS, name); err != nil || fi.IsDir() {
		return httperr.ErrNotFound
	}
	if r.URL.Query().Get("v") == staticVersion {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeFileFS(w, r, staticFS, name)
	return nil
}

// commitURL links a commit on the first configured remote of its
// repository: GitHub, Codeberg and Forgejo all show one at <repo>/commit/<id>.
func (d *Dashboard) commitURL(repo, commit string) string {
	if commit == "" {
		return ""
	}
	for _, r := range d.Repositories {
		if r.Name != repo || len(r.Remotes) == 0 {
			continue
		}
		u, err := url.Parse(r.Remotes[0].URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
			return ""
		}
		return strings.TrimSuffix(strings.TrimSuffix(u.String(), "/"), ".git") + "/commit/" + url.PathEscape(commit)
	}
	return ""
}

func shortCommit(c string) string {
	if len(c) > 10 {
		return c[:10]
	}
	return c
}

// storeName shortens a store path to the start of its hash and its name:
// /nix/store/abcdefgh…-nixos-system-alpha.
func storeName(p string) string {
	base, ok := strings.CutPrefix(p, "/nix/store/")
	if !ok {
		return p
	}
	hash, name, ok := strings.Cut(base, "-")
	if !ok || len(hash) < 8 {
		return p
	}
	return hash[:8] + "…-" + name
}

// stamp is a time as the pages show it: relative, with the exact time in a
// tooltip and a machine-readable attribute.
type stamp struct {
	Zero     bool
	Rel, Abs string
	ISO      string
}

func newStamp(now, t time.Time) stamp {
	if t.IsZero() {
		return stamp{Zero: true}
	}
	return stamp{Rel: ago(now.Sub(t)), Abs: t.UTC().Format("2006-01-02 15:04:05 UTC"), ISO: t.UTC().Format(time.RFC3339)}
}

func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
}

// duration is how long from start to end (to now while running), or "".
func duration(now, start, end time.Time) string {
	if start.IsZero() {
		return ""
	}
	if end.IsZero() {
		end = now
	}
	d := end.Sub(start)
	switch {
	case d < 0:
		return ""
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}
