package gc_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache/gc"
)

// fakeSource is a gc.RootSource of fixed answers.
type fakeSource struct {
	deployed func(n int) (map[string][]string, error)
	reported map[string]string
	built    func(since time.Time) []string
	running  []string
	rolling  []string
}

func (f fakeSource) DeployedPaths(_ context.Context, n int) (map[string][]string, error) {
	return f.deployed(n)
}
func (f fakeSource) ReportedPaths(context.Context) (map[string]string, error) { return f.reported, nil }
func (f fakeSource) BuiltSince(_ context.Context, since time.Time) ([]string, error) {
	return f.built(since), nil
}
func (f fakeSource) RunningPaths(context.Context) ([]string, error) { return f.running, nil }
func (f fakeSource) RolloutPaths(context.Context) ([]string, error) { return f.rolling, nil }

func sp(name string) string { return "/nix/store/" + strings.Repeat("a", 32) + "-" + name }

func TestFleetRoots(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var gotN int
	var gotSince time.Time
	src := fakeSource{
		deployed: func(n int) (map[string][]string, error) {
			gotN = n
			return map[string][]string{"web": {sp("web-3"), sp("web-2")}, "db": {sp("db-1")}}, nil
		},
		reported: map[string]string{"web": sp("web-2"), "nas": sp("nas-0")},
		built:    func(since time.Time) []string { gotSince = since; return []string{sp("web-3"), sp("new")} },
		running:  []string{sp("eval")},
		rolling:  []string{sp("web-1"), sp("eval")},
	}
	roots, err := gc.FleetRoots(context.Background(), src, gc.Retention{Generations: 2, KeepDays: 14, Pins: []string{sp("pin")}}, now)
	if err != nil {
		t.Fatal(err)
	}
	want := "[{" + sp("db-1") + " db: deployed} {" + sp("nas-0") + " nas: running} {" + sp("web-3") + " web: deployed} {" +
		sp("web-2") + " web: deployed} {" + sp("new") + " built} {" + sp("eval") + " evaluating} {" + sp("web-1") + " rollout} {" + sp("pin") + " pinned}]"
	if got := fmt.Sprint(roots); got != want {
		t.Errorf("roots\n got %s\nwant %s", got, want)
	}
	if gotN != 2 || !gotSince.Equal(now.AddDate(0, 0, -14)) {
		t.Errorf("asked for %d generations since %v, want 2 since %v", gotN, gotSince, now.AddDate(0, 0, -14))
	}

	for _, tc := range []struct {
		r    gc.Retention
		want string
	}{
		{gc.Retention{Generations: 0, KeepDays: 14}, "retention of 0 generations"},
		{gc.Retention{Generations: 5, KeepDays: -1}, "keep -1 days"},
		{gc.Retention{Generations: 5, Pins: []string{"/tmp/x"}}, `pin "/tmp/x": not a store path`},
	} {
		if _, err := gc.FleetRoots(context.Background(), src, tc.r, now); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("FleetRoots(%+v) = %v, want an error saying %q", tc.r, err, tc.want)
		}
	}
	broken := errors.New("database is locked")
	src.deployed = func(int) (map[string][]string, error) { return nil, broken }
	if _, err := gc.FleetRoots(context.Background(), src, gc.Retention{Generations: 1}, now); !errors.Is(err, broken) {
		t.Errorf("FleetRoots with a failing source = %v, want %v", err, broken)
	}
}
