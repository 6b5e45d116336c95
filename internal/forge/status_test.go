package forge_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/forge"
)

func TestPlanStatuses(t *testing.T) {
	t.Parallel()
	hosts := func(n int, failed ...int) []forge.HostResult {
		var hs []forge.HostResult
		for i := range n {
			st := forge.StateSuccess
			for _, f := range failed {
				if f == i {
					st = forge.StateFailure
				}
			}
			hs = append(hs, forge.HostResult{Host: fmt.Sprintf("h%d", i), State: st, Description: "built"})
		}
		return hs
	}
	tests := []struct {
		name         string
		hosts        []forge.HostResult
		limit        int
		wantContexts []string
		wantNote     string
	}{
		{name: "small fleet: every host", hosts: hosts(3, 1), limit: 5,
			wantContexts: []string{"farm/host/h0", "farm/host/h1", "farm/host/h2", "farm/eval"}},
		{name: "at the limit", hosts: hosts(2), limit: 2, wantContexts: []string{"farm/host/h0", "farm/host/h1", "farm/eval"}},
		{name: "large fleet: failures only", hosts: hosts(50, 7, 30), limit: 5,
			wantContexts: []string{"farm/host/h7", "farm/host/h30", "farm/eval"}, wantNote: "(50 hosts, 2 failed; per-host statuses only for failures)"},
		{name: "large fleet, many failures: capped", hosts: hosts(50, 1, 2, 3, 4), limit: 2,
			wantContexts: []string{"farm/host/h1", "farm/host/h2", "farm/eval"}, wantNote: "first 2 shown"},
		{name: "large fleet, all good", hosts: hosts(100), limit: 20, wantContexts: []string{"farm/eval"}, wantNote: "0 failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := forge.PlanStatuses("farm", forge.Status{State: forge.StateSuccess, Description: "evaluated"}, tt.hosts, tt.limit)
			var ctxs []string
			for _, s := range got {
				ctxs = append(ctxs, s.Context)
				if len(s.Description) > forge.MaxDescription {
					t.Errorf("%s description is %d bytes", s.Context, len(s.Description))
				}
			}
			if strings.Join(ctxs, " ") != strings.Join(tt.wantContexts, " ") {
				t.Errorf("contexts = %v, want %v", ctxs, tt.wantContexts)
			}
			if overall := got[len(got)-1]; !strings.Contains(overall.Description, tt.wantNote) {
				t.Errorf("overall description = %q, want it to contain %q", overall.Description, tt.wantNote)
			}
		})
	}
	long := forge.PlanStatuses("farm", forge.Status{Description: strings.Repeat("é", 200)}, nil, 1)
	if d := long[0].Description; len(d) > forge.MaxDescription || !strings.HasSuffix(d, "…") {
		t.Errorf("long description = %q (%d bytes)", d, len(d))
	}
}

// fakeClient is a StatusClient of funcs.
type fakeClient struct {
	set func(fullName, commit string, st forge.Status) error
}

func (f fakeClient) SetStatus(_ context.Context, fullName, commit string, st forge.Status) error {
	return f.set(fullName, commit, st)
}

func TestReportKeepsGoingPastAFailingForge(t *testing.T) {
	t.Parallel()
	var sent []string
	ok := fakeClient{set: func(name, commit string, st forge.Status) error {
		sent = append(sent, name+" "+st.Context)
		return nil
	}}
	down := fakeClient{set: func(string, string, forge.Status) error { return &forge.APIError{Status: 502} }}
	statuses := forge.PlanStatuses("farm", forge.Status{State: forge.StatePending}, []forge.HostResult{{Host: "a", State: forge.StatePending}}, 5)
	err := forge.Report(context.Background(), nil, []forge.StatusTarget{
		{Client: down, FullName: "alice/homelab", Name: "codeberg"},
		{Client: ok, FullName: "alice/homelab", Name: "github"},
	}, "c1", statuses)
	var ae *forge.APIError
	if !errors.As(err, &ae) || ae.Status != 502 {
		t.Fatalf("Report = %v, want the 502", err)
	}
	if want := "alice/homelab farm/host/a,alice/homelab farm/eval"; strings.Join(sent, ",") != want {
		t.Errorf("sent = %v, want %s", sent, want)
	}
}
