package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/state"
)

// targetState is a fake state that knows some targets.
type targetState struct {
	fakeState
	targets map[int64]state.Target
}

func (f targetState) Target(_ context.Context, id int64) (state.Target, error) {
	t, ok := f.targets[id]
	if !ok {
		return state.Target{}, state.ErrNotFound
	}
	return t, nil
}

// fakeDiffs serves recorded diffs from a func.
type fakeDiffs func(targetID int64) ([]state.TargetDiff, error)

var _ Diffs = fakeDiffs(nil)

func (f fakeDiffs) TargetDiffs(_ context.Context, id int64) ([]state.TargetDiff, error) { return f(id) }
func (f fakeDiffs) DiffSummaries(context.Context, []int64, string) (map[int64]string, error) {
	return nil, nil
}

// TestTargetDiffAPI: GET /api/targets/{id}/diff answers the recorded diffs
// as farmapi.TargetDiff, nulls where none is recorded, the reason of a
// diff that failed, and catalogue errors otherwise.
func TestTargetDiffAPI(t *testing.T) {
	alpha := state.Target{ID: 7, EvalID: 3, Host: "alpha", State: state.TargetBuilt, OutPath: "/nix/store/aaaa-nixos-system-alpha"}
	previous := farmapi.ClosureDiff{Against: farmapi.AgainstPrevious, BasePath: "/nix/store/bbbb-nixos-system-alpha", BaseTarget: 5,
		BaseEval: 2, BaseBranch: "main", BaseCommit: "c0ffee", Summary: "+1 ~1 -0 · 2.0 MiB", Headline: "linux 6.12.9 → 6.12.10, +1 more",
		Packages: []farmapi.PackageChange{
			{Package: "linux", Kind: "changed", From: []string{"6.12.9"}, To: []string{"6.12.10"}, Direction: "upgrade", SizeDelta: 1024},
			{Package: "htop", Kind: "added", From: []string{}, To: []string{"3.3.0"}, SizeAfter: 400, SizeDelta: 400},
		},
		Added: 1, Changed: 1, PathsBefore: 10, PathsAfter: 11, SizeBefore: 1000, SizeAfter: 2424, SizeDelta: 1424,
		Download: farmapi.Download{Paths: 2, Bytes: 2 << 20}}
	data, err := json.Marshal(previous)
	if err != nil {
		t.Fatal(err)
	}
	recorded := []state.TargetDiff{
		{TargetID: 7, Against: farmapi.AgainstCurrent, BasePath: "/nix/store/cccc-nixos-system-alpha",
			Error: "the host's reported closure: not in the store or the cache"},
		{TargetID: 7, Against: farmapi.AgainstPrevious, BasePath: previous.BasePath, BaseTarget: 5,
			Summary: previous.Summary, Headline: previous.Headline, Data: data},
	}
	st := targetState{targets: map[int64]state.Target{7: alpha, 8: {ID: 8, EvalID: 3, Host: "bravo", State: state.TargetBuilding}}}
	byTarget := fakeDiffs(func(id int64) ([]state.TargetDiff, error) {
		if id == 7 {
			return recorded, nil
		}
		return nil, nil
	})
	down := fakeDiffs(func(int64) ([]state.TargetDiff, error) { return nil, errors.New("secret cause: disk I/O error") })

	wantCurrent := &farmapi.ClosureDiff{Against: farmapi.AgainstCurrent, BasePath: "/nix/store/cccc-nixos-system-alpha",
		Error: "the host's reported closure: not in the store or the cache", Packages: []farmapi.PackageChange{}}
	for _, tc := range []struct {
		name       string
		diffs      Diffs
		path       string
		wantStatus int
		wantError  string
		want       *farmapi.TargetDiff
	}{
		{name: "recorded", diffs: byTarget, path: "/api/targets/7/diff", wantStatus: http.StatusOK,
			want: &farmapi.TargetDiff{Target: 7, Eval: 3, Host: "alpha", OutPath: alpha.OutPath, State: state.TargetBuilt,
				Current: wantCurrent, Previous: &previous}},
		{name: "none recorded", diffs: byTarget, path: "/api/targets/8/diff", wantStatus: http.StatusOK,
			want: &farmapi.TargetDiff{Target: 8, Eval: 3, Host: "bravo", State: state.TargetBuilding}},
		{name: "no diff reader", diffs: nil, path: "/api/targets/7/diff", wantStatus: http.StatusOK,
			want: &farmapi.TargetDiff{Target: 7, Eval: 3, Host: "alpha", OutPath: alpha.OutPath, State: state.TargetBuilt}},
		{name: "unknown target", diffs: byTarget, path: "/api/targets/9/diff", wantStatus: http.StatusNotFound, wantError: "no such target"},
		{name: "id out of range", diffs: byTarget, path: "/api/targets/99999999999999999999/diff", wantStatus: http.StatusBadRequest, wantError: "bad target id"},
		{name: "diffs unreadable", diffs: down, path: "/api/targets/7/diff", wantStatus: http.StatusInternalServerError, wantError: "internal error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(New(Deps{Config: config.Default(), Jobs: fakeJobs{}, State: st, Reports: fakeState{}, Diffs: tc.diffs}).Handler())
			defer srv.Close()
			resp, err := http.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("GET %s = %d %s, want %d", tc.path, resp.StatusCode, b, tc.wantStatus)
			}
			if strings.Contains(string(b), "secret cause") {
				t.Errorf("GET %s: the cause reached the client: %s", tc.path, b)
			}
			if tc.want == nil {
				var answer struct{ Error string }
				if err := json.Unmarshal(b, &answer); err != nil || answer.Error != tc.wantError {
					t.Errorf("GET %s = %s, want error %q", tc.path, b, tc.wantError)
				}
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var got farmapi.TargetDiff
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("GET %s: %v in %s", tc.path, err, b)
			}
			if !reflect.DeepEqual(&got, tc.want) {
				t.Errorf("GET %s =\n%+v\nwant\n%+v", tc.path, got, *tc.want)
			}
			if tc.want.Current == nil && !strings.Contains(string(b), `"current":null`) || tc.want.Previous == nil && !strings.Contains(string(b), `"previous":null`) {
				t.Errorf("GET %s: a diff not recorded is not null: %s", tc.path, b)
			}
		})
	}
}
