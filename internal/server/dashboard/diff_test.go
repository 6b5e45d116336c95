package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/server"
	"github.com/homelab-farm/farm/internal/server/servertest"
	"github.com/homelab-farm/farm/internal/state"
)

// hostile is a package name a push could make up: it must reach every
// page as text.
const hostile = `<script>alert('pkg')</script>`

// putDiff records cd as target's diff in st, as the pipeline does.
func putDiff(t *testing.T, st *state.Store, target int64, cd farmapi.ClosureDiff) {
	t.Helper()
	data, err := json.Marshal(cd)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutTargetDiff(context.Background(), state.TargetDiff{TargetID: target, Against: cd.Against, BasePath: cd.BasePath,
		BaseTarget: cd.BaseTarget, Summary: cd.Summary, Headline: cd.Headline, Error: cd.Error, Data: data}); err != nil {
		t.Fatal(err)
	}
}

// TestDashboardDiffs: the target page shows its closure diffs as tables
// (against what the host runs, against the previous build, or the deploy
// branch's head for a pull request), and the matrix each cell's summary;
// text from the push is escaped.
func TestDashboardDiffs(t *testing.T) {
	d := servertest.Seed(t)
	h := server.New(server.Deps{Config: d.Config, Jobs: d.Queue, State: d.State, Reports: d.State, LogDir: d.LogDir, Diffs: d.State}).Handler()
	f := &fixture{Seeded: d, handler: h}
	alpha1, alpha2, bravo1 := d.Targets["alpha@1"], d.Targets["alpha@2"], d.Targets["bravo@1"]

	putDiff(t, d.State, alpha2.ID, farmapi.ClosureDiff{Against: farmapi.AgainstCurrent, BasePath: servertest.StorePath("alpha", 1),
		Error: "the host's reported closure: <b>gone</b> from the store"})
	putDiff(t, d.State, alpha2.ID, farmapi.ClosureDiff{Against: farmapi.AgainstPrevious, BasePath: alpha1.OutPath, BaseTarget: alpha1.ID,
		BaseEval: alpha1.EvalID, BaseBranch: "main", BaseCommit: servertest.C1,
		Summary: "+1 ~1 -1 · 38 MiB", Headline: "linux 6.12.9 → 6.12.10, +2 more",
		Packages: []farmapi.PackageChange{
			{Package: "linux", Kind: "changed", From: []string{"6.12.9"}, To: []string{"6.12.10"}, Direction: "upgrade", SizeBefore: 100 << 20, SizeAfter: 101 << 20, SizeDelta: 1 << 20},
			{Package: hostile, Kind: "added", To: []string{`1.0"><img src=x onerror=alert(1)>`}, SizeAfter: 2048, SizeDelta: 2048},
			{Package: "nano", Kind: "removed", From: []string{"8.2"}, SizeBefore: 3 << 20, SizeDelta: -(3 << 20)},
		},
		Added: 1, Changed: 1, Removed: 1, PathsBefore: 800, PathsAfter: 801, SizeBefore: 1 << 30, SizeAfter: (1 << 30) + (12 << 20), SizeDelta: 12 << 20,
		Download: farmapi.Download{Paths: 120, Bytes: 38 << 20}})
	// A pull request's build: diffed against the deploy branch's head.
	putDiff(t, d.State, bravo1.ID, farmapi.ClosureDiff{Against: farmapi.AgainstPrevious, BasePath: servertest.StorePath("bravo", 0),
		BaseBranch: "production", BaseCommit: servertest.C3, Summary: "no change", Packages: []farmapi.PackageChange{}})

	for _, tc := range []struct {
		name     string
		path     string
		want     []string
		dontWant []string
	}{
		{
			name: "target with diffs", path: fmt.Sprintf("/targets/%d", alpha2.ID),
			want: []string{
				`<h2>Changes</h2>`,
				`<section class="diff" data-against="current">`, `<h3>Against what the host runs</h3>`,
				`No diff: the host&#39;s reported closure: &lt;b&gt;gone&lt;/b&gt; from the store`,
				`<section class="diff" data-against="previous">`, `<h3>Against the previous build</h3>`,
				fmt.Sprintf(`<a href="/targets/%d">build</a>`, alpha1.ID), `<code title="` + servertest.C1 + `">1111111111</code>`,
				`<dd class="summary">&#43;1 ~1 -1 · 38 MiB</dd>`,
				`1 added, 1 removed, 1 changed version`,
				`800 → 801 paths, 1.0 GiB → 1.0 GiB (&#43;12 MiB)`,
				`<dd class="download">120 paths, 38 MiB</dd>`,
				`<tr class="k-changed"><td>linux</td><td>changed (upgrade)</td><td>6.12.9</td><td>6.12.10</td><td>&#43;1.0 MiB</td></tr>`,
				`<tr class="k-added"><td>&lt;script&gt;alert(&#39;pkg&#39;)&lt;/script&gt;</td><td>added</td><td>—</td><td>1.0&#34;&gt;&lt;img src=x onerror=alert(1)&gt;</td><td>&#43;2.0 KiB</td></tr>`,
				`<tr class="k-removed"><td>nano</td><td>removed</td><td>8.2</td><td>—</td><td>-3.0 MiB</td></tr>`,
			},
			dontWant: []string{`<script>alert`, `<img src=x`, `<b>gone`},
		},
		{
			name: "pull request's build", path: fmt.Sprintf("/targets/%d", bravo1.ID),
			want:     []string{`<h3>Against the head of production (what merging changes)</h3>`, `<dd class="summary">no change</dd>`, `production`},
			dontWant: []string{`data-against="current"`, `<table class="list packages">`},
		},
		{
			name: "target without diffs", path: fmt.Sprintf("/targets/%d", d.Targets["charlie@2"].ID),
			dontWant: []string{`<h2>Changes</h2>`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := f.get(t, tc.path)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %s\n%s", tc.path, res.Status, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("GET %s lacks %q\n%s", tc.path, w, body)
				}
			}
			for _, w := range tc.dontWant {
				if strings.Contains(body, w) {
					t.Errorf("GET %s has %q", tc.path, w)
				}
			}
		})
	}

	t.Run("matrix summaries", func(t *testing.T) {
		_, body := f.get(t, "/")
		for _, tc := range []struct {
			target state.Target
			want   string // "": no summary
		}{
			{alpha2, "&#43;1 ~1 -1 · 38 MiB"}, // html/template writes "+" as &#43;
			{bravo1, "no change"},
			{alpha1, ""},
		} {
			cell := regexp.MustCompile(fmt.Sprintf(`<a href="/targets/%d"[^>]*>([^<]*)(<small class="diff">([^<]*)</small>)?</a></td>`, tc.target.ID)).FindStringSubmatch(body)
			if cell == nil {
				t.Fatalf("no matrix cell for target %d (%s)\n%s", tc.target.ID, tc.target.Host, body)
			}
			if cell[1] != tc.target.State || cell[3] != tc.want {
				t.Errorf("cell of %s@%d = %q, want state %q and summary %q", tc.target.Host, tc.target.EvalID, cell[0], tc.target.State, tc.want)
			}
		}
	})

	t.Run("no diff reader", func(t *testing.T) {
		_, body := newFixture(t).get(t, fmt.Sprintf("/targets/%d", alpha2.ID))
		if strings.Contains(body, `<h2>Changes</h2>`) {
			t.Errorf("a server without Diffs shows diffs")
		}
	})
}
