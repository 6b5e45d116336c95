package statetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/state"
)

// Backend is how the suite gets stores.
type Backend struct {
	// New makes an empty database for one test, released at the test's
	// cleanup, and returns a function that opens a store on it. The
	// function can be called again, for a second store on the same
	// database (after the first is closed, or beside it).
	New func(t *testing.T) (open func(t *testing.T) state.Interface)
	// Shared: stores open on one database at once are one state, and
	// Changed fires for appends on any of them (PostgreSQL). Without it,
	// one store owns the database (SQLite).
	Shared bool
}

// opened opens a store and closes it at cleanup.
func opened(t *testing.T, open func(t *testing.T) state.Interface) state.Interface {
	t.Helper()
	s := open(t)
	t.Cleanup(func() { s.Close() })
	return s
}

// Run checks that b keeps the contract.
func Run(t *testing.T, b Backend) {
	newStore := func(t *testing.T) state.Interface { return opened(t, b.New(t)) }

	t.Run("EvaluationsAndTargets", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t)
		e, created, err := s.StartEvaluation(ctx, state.Evaluation{JobID: 1, Repo: "homelab", Branch: "main", Commit: "c1", Deploy: true})
		if err != nil || !created || e.State != state.EvalRunning || !e.Deploy || e.Created.IsZero() || e.Branch != "main" {
			t.Fatalf("StartEvaluation = %+v, %v, %v; want a new running evaluation", e, created, err)
		}
		again, created, err := s.StartEvaluation(ctx, state.Evaluation{JobID: 1, Repo: "homelab", Commit: "c1"})
		if err != nil || created || again.ID != e.ID || !again.Deploy {
			t.Fatalf("restarted job: %+v, created %v, %v; want the same evaluation", again, created, err)
		}
		byJob, err := s.EvaluationByJob(ctx, 1)
		if err != nil || byJob.ID != e.ID {
			t.Fatalf("EvaluationByJob = %+v, %v", byJob, err)
		}
		tg, err := s.PutTarget(ctx, state.Target{EvalID: e.ID, Host: "alpha", System: "x86_64-linux", State: state.TargetPending})
		if err != nil {
			t.Fatal(err)
		}
		tg2, err := s.PutTarget(ctx, state.Target{EvalID: e.ID, Host: "alpha", System: "x86_64-linux", OutPath: "/nix/store/x", State: state.TargetPending})
		if err != nil || tg2.ID != tg.ID {
			t.Fatalf("PutTarget again = %+v, %v; want the same id %d", tg2, err, tg.ID)
		}
		if _, err := s.PutTarget(ctx, state.Target{EvalID: e.ID, Host: "beta", Kind: "nixos", System: "aarch64-linux", State: state.TargetPending}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetTargetState(ctx, tg.ID, state.TargetBuilding, ""); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Target(ctx, tg.ID); err != nil || got.Started.IsZero() || !got.Finished.IsZero() {
			t.Fatalf("building Target = %+v, %v; want started, not finished", got, err)
		}
		if err := s.SetTargetState(ctx, tg.ID, state.TargetFailed, "build failed"); err != nil {
			t.Fatal(err)
		}
		got, err := s.Target(ctx, tg.ID)
		if err != nil || got.State != state.TargetFailed || got.Reason != "build failed" || got.OutPath != "/nix/store/x" || got.Finished.IsZero() {
			t.Fatalf("Target = %+v, %v", got, err)
		}
		ts, err := s.Targets(ctx, e.ID)
		if err != nil || len(ts) != 2 || ts[0].Host != "alpha" || ts[1].Host != "beta" || ts[1].Kind != "nixos" || ts[1].System != "aarch64-linux" {
			t.Fatalf("Targets = %+v, %v; want alpha and beta by name", ts, err)
		}
		if err := s.SetSourceHash(ctx, e.ID, "src0"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Evaluation(ctx, e.ID); err != nil || got.SourceHash != "src0" || got.State != state.EvalRunning {
			t.Fatalf("after SetSourceHash: %+v, %v", got, err)
		}
		if _, err := s.FindBySource(ctx, "homelab", "src0"); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("FindBySource of a running evaluation = %v, want ErrNotFound", err)
		}
		if err := s.FinishEvaluation(ctx, e.ID, state.EvalDone, "src1", ""); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Evaluation(ctx, e.ID); err != nil || got.State != state.EvalDone || got.Finished.IsZero() {
			t.Fatalf("finished Evaluation = %+v, %v", got, err)
		}
		if found, err := s.FindBySource(ctx, "homelab", "src1"); err != nil || found.ID != e.ID {
			t.Fatalf("FindBySource = %+v, %v", found, err)
		}
		if _, err := s.FindBySource(ctx, "homelab", "other"); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("FindBySource(other) = %v, want ErrNotFound", err)
		}
	})

	t.Run("LastBuilt", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t)
		type tg struct{ host, state string }
		evals := []struct {
			job    int64
			branch string
			deploy bool
			repo   string
			hosts  []tg
		}{
			{1, "main", true, "homelab", []tg{{"alpha", state.TargetBuilt}, {"beta", state.TargetBuilt}}},
			{2, "main", true, "homelab", []tg{{"alpha", state.TargetCached}, {"beta", state.TargetFailed}}},
			{3, "pull/7", false, "homelab", []tg{{"alpha", state.TargetBuilt}, {"beta", state.TargetBuilt}}},
			{4, "main", true, "other", []tg{{"alpha", state.TargetBuilt}}},
			{5, "main", true, "homelab", []tg{{"alpha", state.TargetSkipped}}},
		}
		ids := map[int64]int64{}      // job -> evaluation
		targets := map[string]int64{} // "<job> <host>" -> target
		for _, ev := range evals {
			e, _, err := s.StartEvaluation(ctx, state.Evaluation{JobID: ev.job, Repo: ev.repo, Branch: ev.branch, Commit: fmt.Sprint("c", ev.job), Deploy: ev.deploy})
			if err != nil {
				t.Fatal(err)
			}
			ids[ev.job] = e.ID
			for _, h := range ev.hosts {
				got, err := s.PutTarget(ctx, state.Target{EvalID: e.ID, Host: h.host, System: "x86_64-linux",
					OutPath: fmt.Sprintf("/nix/store/%d-%s", ev.job, h.host), State: h.state})
				if err != nil {
					t.Fatal(err)
				}
				targets[fmt.Sprint(ev.job, " ", h.host)] = got.ID
			}
		}
		tests := []struct {
			name    string
			q       state.BuiltQuery
			wantJob int64 // 0: ErrNotFound
		}{
			{"latest of a branch, skipped not counted", state.BuiltQuery{Repo: "homelab", Host: "alpha", Branch: "main"}, 2},
			{"before an evaluation", state.BuiltQuery{Repo: "homelab", Host: "alpha", Branch: "main", Before: ids[2]}, 1},
			{"a failed build not counted", state.BuiltQuery{Repo: "homelab", Host: "beta", Branch: "main"}, 1},
			{"the deploy branch for a pull request", state.BuiltQuery{Repo: "homelab", Host: "beta", DeployOnly: true}, 1},
			{"any branch", state.BuiltQuery{Repo: "homelab", Host: "beta"}, 3},
			{"another repository", state.BuiltQuery{Repo: "other", Host: "alpha", Branch: "main"}, 4},
			{"nothing before the first", state.BuiltQuery{Repo: "homelab", Host: "alpha", Branch: "main", Before: ids[1]}, 0},
			{"unknown host", state.BuiltQuery{Repo: "homelab", Host: "gamma"}, 0},
		}
		for _, tt := range tests {
			got, ev, err := s.LastBuilt(ctx, tt.q)
			if tt.wantJob == 0 {
				if !errors.Is(err, state.ErrNotFound) {
					t.Errorf("%s: LastBuilt = %+v, %v; want ErrNotFound", tt.name, got, err)
				}
				continue
			}
			want := targets[fmt.Sprint(tt.wantJob, " ", tt.q.Host)]
			if err != nil || got.ID != want || ev.ID != ids[tt.wantJob] || ev.Commit != fmt.Sprint("c", tt.wantJob) ||
				got.OutPath != fmt.Sprintf("/nix/store/%d-%s", tt.wantJob, tt.q.Host) {
				t.Errorf("%s: LastBuilt = target %+v of %+v, %v; want target %d of job %d", tt.name, got, ev, err, want, tt.wantJob)
			}
		}
	})

	t.Run("TargetDiffs", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t)
		e, _, err := s.StartEvaluation(ctx, state.Evaluation{JobID: 1, Repo: "homelab", Branch: "main", Commit: "c1"})
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, h := range []string{"alpha", "beta", "gamma"} {
			tg, err := s.PutTarget(ctx, state.Target{EvalID: e.ID, Host: h, State: state.TargetBuilt})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, tg.ID)
		}
		if ds, err := s.TargetDiffs(ctx, ids[0]); err != nil || len(ds) != 0 {
			t.Fatalf("TargetDiffs before any = %+v, %v; want none", ds, err)
		}
		put := func(d state.TargetDiff) {
			t.Helper()
			if err := s.PutTargetDiff(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		put(state.TargetDiff{TargetID: ids[0], Against: state.DiffPrevious, BasePath: "/nix/store/old", BaseTarget: 41,
			Summary: "first attempt", Data: json.RawMessage(`{"added":9}`)})
		// A retry replaces it.
		put(state.TargetDiff{TargetID: ids[0], Against: state.DiffPrevious, BasePath: "/nix/store/old", BaseTarget: 41,
			Summary: "+2 ~14 -1 · 38 MiB", Headline: "linux 6.12.9 → 6.12.10", Data: json.RawMessage(`{"added":2}`)})
		put(state.TargetDiff{TargetID: ids[0], Against: state.DiffCurrent, Error: "closure of /nix/store/gone: not found"})
		put(state.TargetDiff{TargetID: ids[1], Against: state.DiffPrevious, Summary: "no change", Data: json.RawMessage(`{}`)})
		put(state.TargetDiff{TargetID: ids[1], Against: state.DiffCurrent, Summary: "+1 ~0 -0 · 1 KiB", Data: json.RawMessage(`{}`)})
		put(state.TargetDiff{TargetID: ids[2], Against: state.DiffPrevious, Error: "store unreadable"})

		ds, err := s.TargetDiffs(ctx, ids[0])
		if err != nil || len(ds) != 2 {
			t.Fatalf("TargetDiffs = %+v, %v; want two", ds, err)
		}
		cur, prev := ds[0], ds[1]
		if cur.Against != state.DiffCurrent || cur.Error == "" || cur.Summary != "" || cur.Data != nil || cur.Created.IsZero() {
			t.Errorf("current diff = %+v; want the failure, no data", cur)
		}
		if prev.Against != state.DiffPrevious || prev.BasePath != "/nix/store/old" || prev.BaseTarget != 41 || prev.Error != "" ||
			prev.Summary != "+2 ~14 -1 · 38 MiB" || prev.Headline != "linux 6.12.9 → 6.12.10" || string(prev.Data) != `{"added":2}` {
			t.Errorf("previous diff = %+v; want the retry's", prev)
		}
		sums, err := s.DiffSummaries(ctx, append(ids, 999), state.DiffPrevious)
		want := map[int64]string{ids[0]: "+2 ~14 -1 · 38 MiB", ids[1]: "no change"}
		if err != nil || !maps.Equal(sums, want) {
			t.Errorf("DiffSummaries(previous) = %v, %v; want %v (a failed diff has no summary)", sums, err, want)
		}
		sums, err = s.DiffSummaries(ctx, ids, state.DiffCurrent)
		if err != nil || !maps.Equal(sums, map[int64]string{ids[1]: "+1 ~0 -0 · 1 KiB"}) {
			t.Errorf("DiffSummaries(current) = %v, %v", sums, err)
		}
		if sums, err := s.DiffSummaries(ctx, nil, state.DiffCurrent); err != nil || len(sums) != 0 {
			t.Errorf("DiffSummaries(none) = %v, %v", sums, err)
		}
		// More targets than one query takes.
		many := make([]int64, 1200)
		for i := range many {
			many[i] = int64(i + 1000)
		}
		many[1100] = ids[1]
		if sums, err := s.DiffSummaries(ctx, many, state.DiffCurrent); err != nil || sums[ids[1]] != "+1 ~0 -0 · 1 KiB" || len(sums) != 1 {
			t.Errorf("DiffSummaries(1200 ids) = %v, %v", sums, err)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t)
		for name, err := range map[string]error{
			"Evaluation":      second(s.Evaluation(ctx, 42)),
			"EvaluationByJob": second(s.EvaluationByJob(ctx, 42)),
			"Target":          second(s.Target(ctx, 42)),
			"Host":            second(s.Host(ctx, "nobody")),
		} {
			if !errors.Is(err, state.ErrNotFound) {
				t.Errorf("%s of nothing = %v, want ErrNotFound", name, err)
			}
		}
		if ts, err := s.Targets(ctx, 42); err != nil || len(ts) != 0 {
			t.Errorf("Targets of nothing = %+v, %v", ts, err)
		}
		if evs, err := s.EventsAfter(ctx, 0, 0); err != nil || len(evs) != 0 {
			t.Errorf("EventsAfter on an empty log = %+v, %v", evs, err)
		}
	})

	t.Run("EvaluationsNewestFirst", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t)
		for job := range int64(5) {
			if _, _, err := s.StartEvaluation(ctx, state.Evaluation{JobID: 100 + job, Repo: "r", Commit: fmt.Sprint("c", job)}); err != nil {
				t.Fatal(err)
			}
		}
		evs, err := s.Evaluations(ctx, 3)
		if err != nil || len(evs) != 3 || evs[0].JobID != 104 || evs[2].JobID != 102 {
			t.Fatalf("Evaluations(3) = %+v, %v; want jobs 104, 103, 102", evs, err)
		}
		if all, err := s.Evaluations(ctx, 0); err != nil || len(all) != 5 {
			t.Fatalf("Evaluations(0) = %d, %v; want all 5", len(all), err)
		}
	})

	t.Run("DesiredNeverGoesBack", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t)
		seq1, err := s.NextSeq(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seq2, err := s.NextSeq(ctx)
		if err != nil || seq2 <= seq1 {
			t.Fatalf("NextSeq gave %d then %d, %v", seq1, seq2, err)
		}
		if err := s.SetDesired(ctx, "alpha", "/nix/store/new", "c2", seq2, []byte(`{"seq":2}`)); err != nil {
			t.Fatal(err)
		}
		if err := s.SetDesired(ctx, "alpha", "/nix/store/old", "c1", seq1, []byte(`{"seq":1}`)); err != nil {
			t.Fatal(err)
		}
		h, err := s.Host(ctx, "alpha")
		if err != nil || h.DesiredPath != "/nix/store/new" || h.DesiredSeq != seq2 || h.DesiredCommit != "c2" || string(h.Manifest) != `{"seq":2}` {
			t.Fatalf("after a late older desired closure: %+v, %v; want the newer kept", h, err)
		}
		if err := s.Report(ctx, "alpha", "/nix/store/new", "switched", ""); err != nil {
			t.Fatal(err)
		}
		if err := s.Report(ctx, "beta", "/nix/store/b", "failed", "health check"); err != nil {
			t.Fatal(err)
		}
		h, _ = s.Host(ctx, "alpha")
		if h.CurrentPath != "/nix/store/new" || h.DesiredPath != "/nix/store/new" || h.LastResult != "switched" || h.LastSeen.IsZero() {
			t.Fatalf("after a report: %+v", h)
		}
		hs, err := s.Hosts(ctx)
		if err != nil || len(hs) != 2 || hs[0].Name != "alpha" || hs[1].Name != "beta" || hs[1].LastReason != "health check" || hs[1].Manifest != nil {
			t.Fatalf("Hosts = %+v, %v", hs, err)
		}
	})

	t.Run("RaiseSeq", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t)
		if v, err := s.Seq(ctx); err != nil || v != 0 {
			t.Fatalf("Seq of a new store = %d, %v; want 0", v, err)
		}
		if err := s.RaiseSeq(ctx, 41); err != nil {
			t.Fatal(err)
		}
		if err := s.RaiseSeq(ctx, 7); err != nil {
			t.Fatal(err)
		}
		if v, err := s.Seq(ctx); err != nil || v != 41 {
			t.Fatalf("Seq after raising to 41 and 7 = %d, %v; want 41", v, err)
		}
		if v, err := s.NextSeq(ctx); err != nil || v != 42 {
			t.Fatalf("NextSeq = %d, %v; want 42", v, err)
		}
		if v, err := s.Seq(ctx); err != nil || v != 42 {
			t.Fatalf("Seq = %d, %v; want 42", v, err)
		}
	})

	t.Run("EventLog", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t)
		changed := s.Changed()
		ev, err := s.Append(ctx, "one", map[string]int{"n": 1})
		if err != nil || ev.ID <= 0 || ev.Type != "one" || string(ev.Data) != `{"n":1}` || ev.Time.IsZero() {
			t.Fatalf("Append = %+v, %v", ev, err)
		}
		select {
		case <-changed:
		case <-time.After(5 * time.Second):
			t.Fatal("Changed was not closed by Append")
		}
		if err := s.AppendAll(ctx, []state.NewEvent{{Type: "two", Data: 2}, {Type: "three", Data: 3}}); err != nil {
			t.Fatal(err)
		}
		if err := s.AppendAll(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, "bad", func() {}); err == nil {
			t.Fatal("Append of an unencodable value succeeded")
		}
		evs, err := s.EventsAfter(ctx, 0, 0)
		if err != nil || len(evs) != 3 || evs[0].ID != ev.ID || evs[1].Type != "two" || string(evs[2].Data) != "3" ||
			!(evs[0].ID < evs[1].ID && evs[1].ID < evs[2].ID) || !evs[0].Time.Equal(ev.Time) {
			t.Fatalf("events = %+v, %v", evs, err)
		}
		if page, err := s.EventsAfter(ctx, evs[0].ID, 1); err != nil || len(page) != 1 || page[0].ID != evs[1].ID {
			t.Fatalf("EventsAfter(first, 1) = %+v, %v; want the second event", page, err)
		}
	})

	t.Run("SurvivesReopen", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		open := b.New(t)
		s := open(t)
		e, _, err := s.StartEvaluation(ctx, state.Evaluation{JobID: 7, Repo: "r", Commit: "c"})
		if err != nil {
			t.Fatal(err)
		}
		seq, err := s.NextSeq(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if _, err := s.Append(ctx, "target.built", map[string]int{"n": i}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2 := opened(t, open)
		if got, err := s2.EvaluationByJob(ctx, 7); err != nil || got.ID != e.ID {
			t.Fatalf("evaluation after reopen = %+v, %v", got, err)
		}
		if next, err := s2.NextSeq(ctx); err != nil || next <= seq {
			t.Fatalf("NextSeq after reopen = %d, %v; want above %d", next, err, seq)
		}
		all, err := s2.EventsAfter(ctx, 0, 0)
		if err != nil || len(all) != 3 {
			t.Fatalf("events after reopen = %+v, %v", all, err)
		}
		evs, err := s2.EventsAfter(ctx, all[0].ID, 0)
		if err != nil || len(evs) != 2 || string(evs[1].Data) != `{"n":2}` {
			t.Fatalf("EventsAfter(first) = %+v, %v; want events 2 and 3", evs, err)
		}
		// New events continue the order.
		ev, err := s2.Append(ctx, "after", nil)
		if err != nil || ev.ID <= all[2].ID {
			t.Fatalf("Append after reopen = %+v, %v; want an id above %d", ev, err, all[2].ID)
		}
	})

	// Several stores on one database (several builders), or one store used
	// by many goroutines where one store owns the database.
	stores := func(t *testing.T, n int) []state.Interface {
		open := b.New(t)
		out := make([]state.Interface, n)
		for i := range out {
			if i == 0 || b.Shared {
				out[i] = opened(t, open)
			} else {
				out[i] = out[0]
			}
		}
		return out
	}

	runRollouts(t, newStore, stores)

	t.Run("SeqFromConcurrentStores", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		ss := stores(t, 2)
		const goroutines, each = 4, 25
		var mu sync.Mutex
		var all []uint64
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				s := ss[g%2]
				var last uint64
				for range each {
					seq, err := s.NextSeq(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					if seq <= last {
						t.Errorf("store %d: NextSeq gave %d after %d", g%2, seq, last)
					}
					last = seq
					mu.Lock()
					all = append(all, seq)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		slices.Sort(all)
		if len(all) != goroutines*each || len(slices.Compact(slices.Clone(all))) != len(all) {
			t.Fatalf("NextSeq over two stores gave %d numbers, %d distinct; want %d distinct", len(all), len(slices.Compact(slices.Clone(all))), goroutines*each)
		}
		// Both stores now sign above everything handed out.
		for i, s := range ss {
			if seq, err := s.NextSeq(ctx); err != nil || seq <= all[len(all)-1] {
				t.Errorf("store %d: NextSeq = %d, %v; want above %d", i, seq, err, all[len(all)-1])
			}
		}
	})

	t.Run("DesiredFromConcurrentStores", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		ss := stores(t, 2)
		const rounds = 40
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() {
				for r := range rounds {
					seq, err := ss[i].NextSeq(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					body, _ := json.Marshal(map[string]uint64{"seq": seq})
					if err := ss[(i+r)%2].SetDesired(ctx, "alpha", fmt.Sprint("/nix/store/", seq), fmt.Sprint("c", seq), seq, body); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		last, err := ss[0].NextSeq(ctx)
		if err != nil {
			t.Fatal(err)
		}
		top := last - 1 // the highest seq any round signed
		for i, s := range ss {
			h, err := s.Host(ctx, "alpha")
			if err != nil || h.DesiredSeq != top || h.DesiredPath != fmt.Sprint("/nix/store/", top) || string(h.Manifest) != fmt.Sprintf(`{"seq":%d}`, top) {
				t.Errorf("store %d: host = seq %d %s %s, %v; want seq %d", i, h.DesiredSeq, h.DesiredPath, h.Manifest, err, top)
			}
		}
	})

	t.Run("FollowConcurrentAppends", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		ss := stores(t, 3)
		writers, follower := ss[:2], ss[2]
		const each = 150
		type key struct{ W, N int }
		want := map[key]bool{}
		for w := range writers {
			for n := range each {
				want[key{w, n}] = true
			}
		}
		// The follower reads in small pages and waits on Changed, as the
		// SSE handler does; it must see every event once, in id order.
		seen := map[key]int{}
		var ids []int64
		followed := make(chan error, 1)
		go func() {
			var after int64
			for len(ids) < len(want) {
				changed := follower.Changed()
				evs, err := follower.EventsAfter(ctx, after, 7)
				if err != nil {
					followed <- err
					return
				}
				for _, ev := range evs {
					var k key
					if err := json.Unmarshal(ev.Data, &k); err != nil {
						followed <- fmt.Errorf("event %d: %w", ev.ID, err)
						return
					}
					seen[k]++
					ids = append(ids, ev.ID)
					after = ev.ID
				}
				if len(evs) > 0 {
					continue
				}
				select {
				case <-changed:
				case <-time.After(10 * time.Second):
					followed <- fmt.Errorf("follower woken by nothing for 10s at event %d with %d of %d seen", after, len(ids), len(want))
					return
				}
			}
			followed <- nil
		}()
		var wg sync.WaitGroup
		for w, s := range writers {
			wg.Go(func() {
				for n := 0; n < each; {
					if n%3 == 0 {
						if _, err := s.Append(ctx, "test", key{w, n}); err != nil {
							t.Error(err)
							return
						}
						n++
						continue
					}
					batch := []state.NewEvent{}
					for ; n < each && len(batch) < 4; n++ {
						batch = append(batch, state.NewEvent{Type: "test", Data: key{w, n}})
					}
					if err := s.AppendAll(ctx, batch); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if err := <-followed; err != nil {
			t.Fatal(err)
		}
		if !slices.IsSorted(ids) {
			t.Errorf("follower saw ids out of order: %v", ids)
		}
		for k := range want {
			if seen[k] != 1 {
				t.Errorf("event %+v seen %d times, want once", k, seen[k])
			}
		}
		all, err := follower.EventsAfter(ctx, 0, 10*len(want))
		if err != nil || len(all) != len(want) {
			t.Fatalf("log holds %d events, %v; want %d", len(all), err, len(want))
		}
	})

	t.Run("Collections", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t)
		empty, err := s.CacheHistory(ctx, time.Time{}, 0)
		if err != nil || len(empty.Sizes) != 0 || len(empty.Last) != 0 || len(empty.Hosts) != 0 {
			t.Fatalf("CacheHistory of nothing = %+v, %v; want empty", empty, err)
		}
		day := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
		alpha := []state.HostBytes{{Host: "alpha", Paths: 120, NarBytes: 5 << 30, FileBytes: 2 << 30}, {Host: "beta", Paths: 3, NarBytes: 10, FileBytes: 4}}
		runs := []state.Collection{
			{Instance: "b1", Started: day, Duration: 90 * time.Second, FreedObjects: 10, FreedBytes: 1000, KeptPaths: 50, CacheObjects: 100, CacheBytes: 9000},
			{Instance: "b2", Started: day.AddDate(0, 0, 1), Duration: time.Second, Error: "collect: another collection is running"},
			{Instance: "b1", Started: day.AddDate(0, 0, 2), Duration: 80 * time.Second, FreedObjects: 4, FreedBytes: 400, KeptPaths: 52, CacheObjects: 104, CacheBytes: 9400, Hosts: alpha},
			{Instance: "b1", Started: day.AddDate(0, 0, 3), Duration: 2 * time.Second, Error: "list: connection refused"},
		}
		for i, c := range runs {
			got, err := s.RecordCollection(ctx, c)
			if err != nil || got.ID == 0 {
				t.Fatalf("RecordCollection %d = %+v, %v", i, got, err)
			}
			runs[i].ID = got.ID
		}
		h, err := s.CacheHistory(ctx, day.AddDate(0, 0, -7), 3)
		if err != nil {
			t.Fatal(err)
		}
		wantSizes := []state.SizePoint{
			{Time: day.Add(90 * time.Second), Objects: 100, Bytes: 9000},
			{Time: day.AddDate(0, 0, 2).Add(80 * time.Second), Objects: 104, Bytes: 9400},
		}
		if !slices.EqualFunc(h.Sizes, wantSizes, func(a, b state.SizePoint) bool {
			return a.Time.Equal(b.Time) && a.Objects == b.Objects && a.Bytes == b.Bytes
		}) {
			t.Errorf("Sizes = %+v, want the successful runs oldest first: %+v", h.Sizes, wantSizes)
		}
		if len(h.Last) != 3 || h.Last[0].ID != runs[3].ID || h.Last[1].ID != runs[2].ID || h.Last[2].ID != runs[1].ID {
			t.Fatalf("Last = %+v, want runs 3, 2, 1 newest first", h.Last)
		}
		if l := h.Last[0]; l.Error != runs[3].Error || l.Instance != "b1" || !l.Started.Equal(runs[3].Started) || l.Duration != 2*time.Second {
			t.Errorf("Last[0] = %+v, want %+v", l, runs[3])
		}
		if l := h.Last[1]; l.FreedObjects != 4 || l.FreedBytes != 400 || l.KeptPaths != 52 || l.CacheObjects != 104 || l.CacheBytes != 9400 || !slices.Equal(l.Hosts, alpha) {
			t.Errorf("Last[1] = %+v, want %+v", l, runs[2])
		}
		if !slices.Equal(h.Hosts, alpha) {
			t.Errorf("Hosts = %+v, want those of the latest successful run %+v", h.Hosts, alpha)
		}
		recent, err := s.CacheHistory(ctx, day.AddDate(0, 0, 1), 0)
		if err != nil || len(recent.Sizes) != 1 || recent.Sizes[0].Bytes != 9400 || len(recent.Last) != 4 {
			t.Fatalf("CacheHistory since day 1 = %+v, %v; want one size point and all four runs", recent, err)
		}
	})

	t.Run("ClaimCollection", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		ss := stores(t, 2)
		now := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
		if due, err := ss[0].NextCollection(ctx); err != nil || !due.IsZero() {
			t.Fatalf("NextCollection before any claim = %v, %v; want zero", due, err)
		}
		// Many claims at once (several builders at the due time): one wins.
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := range 8 {
			wg.Go(func() {
				ok, err := ss[i%2].ClaimCollection(ctx, now, now.Add(24*time.Hour))
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d claims won the first due time, want 1", wins)
		}
		if due, err := ss[1].NextCollection(ctx); err != nil || !due.Equal(now.Add(24*time.Hour)) {
			t.Fatalf("NextCollection = %v, %v; want %v", due, err, now.Add(24*time.Hour))
		}
		if ok, err := ss[1].ClaimCollection(ctx, now.Add(time.Hour), now.Add(25*time.Hour)); err != nil || ok {
			t.Fatalf("claim before due = %v, %v; want false", ok, err)
		}
		if ok, err := ss[1].ClaimCollection(ctx, now.Add(24*time.Hour), now.Add(48*time.Hour)); err != nil || !ok {
			t.Fatalf("claim when due = %v, %v; want true", ok, err)
		}
		if err := ss[0].PostponeCollection(ctx, now.Add(25*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if due, err := ss[1].NextCollection(ctx); err != nil || !due.Equal(now.Add(25*time.Hour)) {
			t.Fatalf("NextCollection after postponing = %v, %v; want %v", due, err, now.Add(25*time.Hour))
		}
		if seq, err := ss[0].Seq(ctx); err != nil || seq != 0 {
			t.Errorf("the schedule moved the deploy seq to %d, %v", seq, err)
		}
	})

	if b.Shared {
		t.Run("ChangedAcrossStores", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ss := stores(t, 2)
			for range 3 {
				changed := ss[1].Changed()
				ev, err := ss[0].Append(ctx, "elsewhere", nil)
				if err != nil {
					t.Fatal(err)
				}
				select {
				case <-changed:
				case <-time.After(5 * time.Second):
					t.Fatal("an append on one store did not wake a follower on another")
				}
				if evs, err := ss[1].EventsAfter(ctx, ev.ID-1, 0); err != nil || len(evs) == 0 || evs[0].ID != ev.ID {
					t.Fatalf("the other store reads %+v, %v; want event %d", evs, err, ev.ID)
				}
			}
		})
	}
}

func second[T any](_ T, err error) error { return err }
