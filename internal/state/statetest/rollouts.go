package statetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/rollout"
	"github.com/homelab-farm/farm/internal/state"
)

var rolloutT0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func newRollout(t *testing.T, commit string, kind rollout.Kind) *rollout.Rollout {
	t.Helper()
	r, err := rollout.New(commit, kind, []rollout.Target{
		{Host: "alpha", Wave: 0, StorePath: "/nix/store/" + commit + "-alpha"},
		{Host: "beta", Wave: 1, StorePath: "/nix/store/" + commit + "-beta"},
		{Host: "gamma", Wave: 1, StorePath: "/nix/store/" + commit + "-gamma"},
	}, rolloutT0)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// create stores a new rollout of repo in its own transaction.
func create(t *testing.T, s state.Interface, repo string, r state.Rollout) state.Rollout {
	t.Helper()
	var got state.Rollout
	err := s.WithRollouts(context.Background(), repo, func(tx state.RolloutTx) error {
		var err error
		got, err = tx.Create(context.Background(), r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func runRollouts(t *testing.T, newStore func(t *testing.T) state.Interface, stores func(t *testing.T, n int) []state.Interface) {
	t.Run("Rollouts", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t)
		remotes := []queue.Remote{{Forge: "github", URL: "https://github.com/o/homelab", FullName: "o/homelab"}}
		first := create(t, s, "homelab", state.Rollout{Branch: "main", Remotes: remotes, State: newRollout(t, "c1", rollout.KindPush)})
		other := create(t, s, "other", state.Rollout{State: newRollout(t, "d1", rollout.KindPush)})
		if first.ID == 0 || other.ID == first.ID || first.Repo != "homelab" || first.Created.IsZero() {
			t.Fatalf("created %+v and %+v; want two ids, the repository and a time", first, other)
		}
		got, err := s.Rollout(ctx, first.ID)
		if err != nil || got.Branch != "main" || !slices.Equal(got.Remotes, remotes) || got.State.Commit != "c1" ||
			got.State.Status != rollout.StatusProgressing || len(got.State.Targets) != 3 || got.State.Hosts["beta"] == nil {
			t.Fatalf("Rollout = %+v, %v; want what was created", got, err)
		}
		if _, err := s.Rollout(ctx, 999); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("Rollout(999) = %v, want ErrNotFound", err)
		}

		// A newer commit supersedes the first, in one transaction.
		var second state.Rollout
		err = s.WithRollouts(ctx, "homelab", func(tx state.RolloutTx) error {
			active, err := tx.Active(ctx)
			if err != nil {
				return err
			}
			if len(active) != 1 || active[0].ID != first.ID {
				t.Errorf("Active in homelab = %+v, want only rollout %d", active, first.ID)
			}
			if _, err := tx.Get(ctx, other.ID); !errors.Is(err, state.ErrNotFound) {
				t.Errorf("Get of another repository's rollout = %v, want ErrNotFound", err)
			}
			next := newRollout(t, "c2", rollout.KindPush)
			for _, r := range active {
				if err := r.State.Supersede("c2", rolloutT0); err != nil {
					return err
				}
				if err := tx.Save(ctx, r); err != nil {
					return err
				}
			}
			second, err = tx.Create(ctx, state.Rollout{Branch: "main", State: next})
			if err != nil {
				return err
			}
			return tx.Append("rollout.started", map[string]int64{"rollout": second.ID})
		})
		if err != nil {
			t.Fatal(err)
		}
		active, err := s.ActiveRollouts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, r := range active {
			ids = append(ids, r.ID)
		}
		if want := []int64{other.ID, second.ID}; !slices.Equal(ids, want) {
			t.Errorf("ActiveRollouts = %v, want %v", ids, want)
		}
		if got, _ := s.Rollout(ctx, first.ID); got.State.Status != rollout.StatusSuperseded || got.State.SupersededBy != "c2" {
			t.Errorf("first rollout after supersede: %+v", got.State)
		}
		evs, err := s.EventsAfter(ctx, 0, 0)
		if err != nil || len(evs) != 1 || evs[0].Type != "rollout.started" {
			t.Errorf("events = %+v, %v; want the one appended in the transaction", evs, err)
		}
		all, err := s.Rollouts(ctx, "homelab", 10)
		if err != nil || len(all) != 2 || all[0].ID != second.ID || all[1].ID != first.ID {
			t.Errorf("Rollouts(homelab) = %+v, %v; want the second, then the first", all, err)
		}
		if all, err := s.Rollouts(ctx, "", 10); err != nil || len(all) != 3 {
			t.Errorf("Rollouts() = %d rollouts, %v; want 3", len(all), err)
		}
		err = s.WithRollouts(ctx, "homelab", func(tx state.RolloutTx) error {
			if l, ok, err := tx.Latest(ctx, rollout.KindPush); err != nil || !ok || l.ID != second.ID {
				t.Errorf("Latest push = %+v, %v, %v; want rollout %d", l.ID, ok, err, second.ID)
			}
			if _, ok, err := tx.Latest(ctx, rollout.KindRollback); err != nil || ok {
				t.Errorf("Latest rollback = %v, %v; want none", ok, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}

		// The closures of the active rollouts are roots; those of ended ones are not.
		paths, err := s.RolloutPaths(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"/nix/store/c2-alpha", "/nix/store/c2-beta", "/nix/store/c2-gamma", "/nix/store/d1-alpha", "/nix/store/d1-beta", "/nix/store/d1-gamma"}
		if !slices.Equal(paths, want) {
			t.Errorf("RolloutPaths = %v, want %v", paths, want)
		}
	})

	t.Run("RolloutTransactionAllOrNothing", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t)
		boom := errors.New("signer down")
		err := s.WithRollouts(ctx, "homelab", func(tx state.RolloutTx) error {
			if _, err := tx.Create(ctx, state.Rollout{State: newRollout(t, "c1", rollout.KindPush)}); err != nil {
				return err
			}
			seq, err := tx.NextSeq(ctx)
			if err != nil {
				return err
			}
			if err := tx.SetDesired(ctx, "alpha", "/nix/store/c1-alpha", "c1", seq, []byte("{}")); err != nil {
				return err
			}
			if h, err := tx.Host(ctx, "alpha"); err != nil || h.DesiredSeq != seq {
				t.Errorf("Host in the transaction = %+v, %v; want its own write", h, err)
			}
			if err := tx.Append("host.desired", map[string]string{"host": "alpha"}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("WithRollouts = %v, want the function's error", err)
		}
		if rs, err := s.Rollouts(ctx, "", 0); err != nil || len(rs) != 0 {
			t.Errorf("after a failed transaction: rollouts %+v, %v; want none", rs, err)
		}
		if _, err := s.Host(ctx, "alpha"); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("after a failed transaction: host %v; want ErrNotFound", err)
		}
		if evs, err := s.EventsAfter(ctx, 0, 0); err != nil || len(evs) != 0 {
			t.Errorf("after a failed transaction: events %+v, %v; want none", evs, err)
		}
		if seq, err := s.Seq(ctx); err != nil || seq != 0 {
			t.Errorf("after a failed transaction: seq %d, %v; want 0", seq, err)
		}
	})

	// Several builders advancing one rollout at once: the next wave is
	// offered exactly once.
	t.Run("RolloutAdvanceFromConcurrentStores", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		ss := stores(t, 2)
		r := newRollout(t, "c1", rollout.KindPush)
		r.Advance(rollout.Config{}, rollout.Input{Now: rolloutT0}) // offers alpha
		created := create(t, ss[0], "homelab", state.Rollout{State: r})
		report := rollout.Report{Host: "alpha", Closure: "/nix/store/c1-alpha", Outcome: rollout.OutcomeSwitched, At: rolloutT0.Add(time.Minute)}
		var mu sync.Mutex
		var offered []string
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				err := ss[i%2].WithRollouts(ctx, "homelab", func(tx state.RolloutTx) error {
					cur, err := tx.Get(ctx, created.ID)
					if err != nil {
						return err
					}
					d := cur.State.Advance(rollout.Config{}, rollout.Input{Now: report.At, Reports: map[string]rollout.Report{"alpha": report}})
					for _, h := range d.Offer {
						// What a builder does for an offer, in the transaction.
						seq, err := tx.NextSeq(ctx)
						if err != nil {
							return err
						}
						if err := tx.SetDesired(ctx, h, "/nix/store/c1-"+h, "c1", seq, []byte("{}")); err != nil {
							return err
						}
					}
					mu.Lock()
					offered = append(offered, d.Offer...)
					mu.Unlock()
					return tx.Save(ctx, cur)
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		slices.Sort(offered)
		if want := []string{"beta", "gamma"}; !slices.Equal(offered, want) {
			t.Errorf("offered %v over 8 concurrent advances, want %v once", offered, want)
		}
		got, err := ss[1].Rollout(ctx, created.ID)
		if err != nil || got.State.Wave != 1 || !got.State.Offered("beta") {
			t.Errorf("rollout after the advances: %+v, %v; want wave 1 offered", got.State, err)
		}
	})

	t.Run("DeployEvaluations", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t)
		for i, e := range []state.Evaluation{
			{Repo: "homelab", Branch: "main", Commit: "abc123def", Deploy: true},
			{Repo: "homelab", Branch: "dev", Commit: "abc123fff", Deploy: false},
			{Repo: "homelab", Branch: "main", Commit: "abd000000", Deploy: true},
			{Repo: "other", Branch: "main", Commit: "abc123def", Deploy: true},
			{Repo: "homelab", Branch: "main", Commit: "abc199999", Deploy: true}, // left running
		} {
			e.JobID = int64(i + 1)
			ev, _, err := s.StartEvaluation(ctx, e)
			if err != nil {
				t.Fatal(err)
			}
			if i < 4 {
				if err := s.FinishEvaluation(ctx, ev.ID, state.EvalDone, "", ""); err != nil {
					t.Fatal(err)
				}
			}
		}
		got, err := s.DeployEvaluations(ctx, "abc1")
		if err != nil {
			t.Fatal(err)
		}
		var jobs []int64
		for _, e := range got {
			jobs = append(jobs, e.JobID)
		}
		if want := []int64{4, 1}; !slices.Equal(jobs, want) {
			t.Errorf("DeployEvaluations(abc1) = jobs %v, want %v (finished deploys, newest first)", jobs, want)
		}
		for _, bad := range []string{"ab", "ABC1", "abc%", "abc_", "g123"} {
			if _, err := s.DeployEvaluations(ctx, bad); err == nil {
				t.Errorf("DeployEvaluations(%q) = nil error, want a refusal", bad)
			}
		}
	})
}
