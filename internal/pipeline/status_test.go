package pipeline_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/queue"
)

// orderForge records every commit status in the order it arrived.
type orderForge struct {
	mu   sync.Mutex
	sent []forge.Status
}

func (f *orderForge) SetStatus(_ context.Context, _, _ string, st forge.Status) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, st)
	return nil
}

func (f *orderForge) statuses() []forge.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]forge.Status(nil), f.sent...)
}

// TestStatusesThroughThePool: with the pool's background "pending" and the
// pipeline's outcome, a commit's statuses arrive with every host status
// before the overall one, which comes last and is never followed by a
// "pending"; links go to dashboard pages under the public URL (never the
// JSON API, never an address nobody can open); a built host's description
// tells what its closure changes, within the forge's limit.
func TestStatusesThroughThePool(t *testing.T) {
	tests := []struct {
		name      string
		publicURL string
		base      string // "" for no links
	}{
		{"public URL", "https://farm.example/", "https://farm.example"},
		{"no public URL", "", ""},
		{"a listen address with port 0", "http://127.0.0.1:0", ""},
		{"an unspecified address", "http://0.0.0.0:8080/", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			ctx := context.Background()
			ff := &orderForge{}
			h.p.Statuses = &pipeline.Statuses{For: func(queue.Remote) forge.StatusClient { return ff }, PublicURL: tt.publicURL, Evaluations: h.st}
			packages := map[string]string{"linux": "6.12.9", "zlib": "1.3"}
			c1 := h.commit(t, map[string]fleetHost{"alpha": {Version: "1", Packages: packages}, "beta": {Version: "1"}}, "c1")
			h.process(t, h.job(c1))
			if err := h.st.Report(ctx, "alpha", h.host(t, "alpha").DesiredPath, "switched", ""); err != nil {
				t.Fatal(err)
			}
			packages = map[string]string{"linux": "6.12.10", "zlib": "1.3", "firmware": "2026"}
			c2 := h.commit(t, map[string]fleetHost{"alpha": {Version: "2", Packages: packages}, "beta": {Version: "2", Fail: true}}, "c2")
			h.enqueue(t, c2, c1)
			ff.mu.Lock()
			ff.sent = nil
			ff.mu.Unlock()

			runCtx, stop := context.WithCancel(ctx)
			pool := &pipeline.Pool{Queue: drainQueue{h.q, stop}, Workers: 1, Process: h.p.Process, Statuses: h.p.Statuses}
			pool.Run(runCtx)

			sent := ff.statuses()
			if len(sent) == 0 {
				t.Fatal("no statuses")
			}
			last := sent[len(sent)-1]
			if last.Context != "farm/eval" || last.State != forge.StateFailure || last.Description != "1 built, 0 cached, 0 skipped, 1 failed" {
				t.Errorf("last status = %+v, want the overall failure", last)
			}
			var seen []string
			final := false
			hosts := map[string]forge.Status{}
			for _, st := range sent {
				seen = append(seen, fmt.Sprintf("%s %s", st.Context, st.State))
				if st.Context == "farm/eval" && st.State != forge.StatePending {
					final = true
				} else if final {
					t.Errorf("%s %s sent after the overall outcome", st.Context, st.State)
				}
				if h, ok := strings.CutPrefix(st.Context, "farm/host/"); ok {
					hosts[h] = st
				}
				if tt.base == "" && st.TargetURL != "" {
					t.Errorf("%s links %q without a usable public URL", st.Context, st.TargetURL)
				}
				if strings.Contains(st.TargetURL, "/api/") || strings.Contains(st.TargetURL, "127.0.0.1:0") {
					t.Errorf("%s links %q", st.Context, st.TargetURL)
				}
				if len(st.Description) > forge.MaxDescription {
					t.Errorf("%s description is %d bytes", st.Context, len(st.Description))
				}
			}
			if len(hosts) != 2 {
				t.Fatalf("statuses %q, want one per host", seen)
			}
			tg := h.targets(t, h.evalJob(t))
			if tt.base != "" {
				ev, err := h.st.EvaluationByJob(ctx, h.evalJob(t))
				if err != nil {
					t.Fatal(err)
				}
				if want := fmt.Sprintf("%s/evaluations/%d", tt.base, ev.ID); last.TargetURL != want {
					t.Errorf("overall links %q, want %q", last.TargetURL, want)
				}
				for _, st := range sent {
					if st.Context == "farm/eval" && st.TargetURL != "" && st.TargetURL != last.TargetURL {
						t.Errorf("%s %s links %q, want the evaluation's page", st.Context, st.State, st.TargetURL)
					}
				}
				if want := fmt.Sprintf("%s/targets/%d", tt.base, tg["alpha"].ID); hosts["alpha"].TargetURL != want {
					t.Errorf("alpha links %q, want %q", hosts["alpha"].TargetURL, want)
				}
			}
			a := hosts["alpha"]
			if a.State != forge.StateSuccess || !strings.HasPrefix(a.Description, "built: +1 ~1 -0, fetch ") ||
				!strings.Contains(a.Description, "linux 6.12.9 → 6.12.10") {
				t.Errorf("alpha status = %+v, want built with what changes against what it runs", a)
			}
			if b := hosts["beta"]; b.State != forge.StateFailure || !strings.HasPrefix(b.Description, "failed: build failed") {
				t.Errorf("beta status = %+v", b)
			}
		})
	}
}

// evalJob returns the id of the latest job the queue completed.
func (h *harness) evalJob(t *testing.T) int64 {
	t.Helper()
	jobs, err := h.q.List(context.Background(), queue.ListOptions{States: []queue.State{queue.Done}})
	if err != nil || len(jobs) == 0 {
		t.Fatalf("done jobs: %v, %v", jobs, err)
	}
	latest := jobs[0]
	for _, j := range jobs {
		if j.ID > latest.ID {
			latest = j
		}
	}
	return latest.ID
}

// TestStatusesNeverGoBack: for one job attempt, a status less far on than
// the last one sent (a "pending" after the outcome, an unlinked "pending"
// after a linked one) is dropped; the next attempt starts afresh.
func TestStatusesNeverGoBack(t *testing.T) {
	pending := forge.Status{State: forge.StatePending, Description: "evaluating"}
	linked := forge.Status{State: forge.StatePending, Description: "evaluating", TargetURL: "https://farm.example/evaluations/1"}
	done := forge.Status{State: forge.StateSuccess, Description: "1 built"}
	tests := []struct {
		name string
		send []forge.Status
		want []string
	}{
		{"in order", []forge.Status{pending, linked, done}, []string{"pending ", "pending link", "success link"}},
		{"pending after the outcome", []forge.Status{linked, done, pending, linked}, []string{"pending link", "success link"}},
		{"unlinked after linked", []forge.Status{linked, pending, done}, []string{"pending link", "success link"}},
		{"the outcome again", []forge.Status{done, done}, []string{"success link", "success link"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ff := &orderForge{}
			s := &pipeline.Statuses{For: func(queue.Remote) forge.StatusClient { return ff }}
			job := queue.Job{ID: 7, Attempts: 1, Commit: "c", Remotes: []queue.Remote{{URL: "https://github.com/rain/homelab", FullName: "rain/homelab"}}}
			for _, st := range tt.send {
				if st.State != forge.StatePending {
					st.TargetURL = "https://farm.example/evaluations/1"
				}
				if err := s.Send(context.Background(), job, st, nil); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for _, st := range ff.statuses() {
				l := ""
				if st.TargetURL != "" {
					l = "link"
				}
				got = append(got, string(st.State)+" "+l)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("sent %q, want %q", got, tt.want)
			}
			// A retry is a new attempt: it reports pending again.
			job.Attempts++
			if err := s.Send(context.Background(), job, pending, nil); err != nil {
				t.Fatal(err)
			}
			if n := len(ff.statuses()); n != len(tt.want)+1 {
				t.Errorf("the next attempt's pending was not sent")
			}
		})
	}
}

func TestPublicURLWarning(t *testing.T) {
	for _, tt := range []struct {
		url  string
		warn string // "" for none, else a part of the warning
	}{
		{"https://farm.home.arpa", ""},
		{"http://192.168.1.10:8080/", ""},
		{"", "no public_url configured"},
		{"http://127.0.0.1:0", "not an address people can open"},
		{"http://[::]:8080", "not an address people can open"},
		{"farm.home.arpa:8080", "not an address people can open"},
		{"https://user:secret@farm.example", "not an address people can open"},
	} {
		got := pipeline.PublicURLWarning(tt.url)
		if (tt.warn == "") != (got == "") || !strings.Contains(got, tt.warn) || strings.Contains(got, "secret") {
			t.Errorf("PublicURLWarning(%q) = %q, want %q", tt.url, got, tt.warn)
		}
	}
}
