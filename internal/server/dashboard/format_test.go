package dashboard

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/state"
)

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
