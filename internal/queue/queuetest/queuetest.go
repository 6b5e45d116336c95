package queuetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/queue"
)

// Clock is a settable clock for tests: Now returns the current setting.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock set to a fixed instant.
func NewClock() *Clock {
	return &Clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// OpenFunc opens an empty queue for one test with the given options; the
// test's cleanup must release it and anything it created.
type OpenFunc func(t *testing.T, opts queue.Options) queue.Queue

// RunContractTests checks that an implementation keeps the queue.Queue contract.
// Every implementation's tests call it.
func RunContractTests(t *testing.T, open OpenFunc) {
	gh := queue.Remote{Forge: "github", URL: "https://github.com/alice/homelab", FullName: "alice/homelab"}
	cb := queue.Remote{Forge: "forgejo", URL: "https://codeberg.org/alice/homelab", FullName: "alice/homelab"}
	fj := queue.Remote{Forge: "forgejo", URL: "https://git.example.org/alice/homelab", FullName: "alice/homelab"}
	push := func(commit, branch string, r queue.Remote, delivery string) queue.EnqueueRequest {
		return queue.EnqueueRequest{Kind: queue.KindEval, Key: queue.EvalKey("homelab", commit), Repo: "homelab", Branch: branch,
			Commit: commit, Deploy: branch == "main", Supersede: true, Remote: r, DeliveryKey: delivery,
			Payload: []byte(`{"x":1}`)}
	}
	setup := func(t *testing.T) (queue.Queue, *Clock, context.Context) {
		t.Helper()
		clk := NewClock()
		q := open(t, queue.Options{Now: clk.Now, MaxAttempts: 3, BackoffBase: time.Second, BackoffMax: 3 * time.Second})
		return q, clk, context.Background()
	}
	mustEnqueue := func(t *testing.T, q queue.Queue, req queue.EnqueueRequest) queue.EnqueueResult {
		t.Helper()
		res, err := q.Enqueue(context.Background(), req)
		if err != nil {
			t.Fatalf("Enqueue(%s): %v", req.Key, err)
		}
		return res
	}
	mustClaim := func(t *testing.T, q queue.Queue, lease time.Duration) queue.Job {
		t.Helper()
		j, err := q.Claim(context.Background(), queue.ClaimRequest{Worker: "w1", Lease: lease})
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		return j
	}
	wantEmpty := func(t *testing.T, q queue.Queue) {
		t.Helper()
		if j, err := q.Claim(context.Background(), queue.ClaimRequest{Worker: "w", Lease: time.Minute}); !errors.Is(err, queue.ErrEmpty) {
			t.Fatalf("Claim = job %d, %v; want queue.ErrEmpty", j.ID, err)
		}
	}
	wantState := func(t *testing.T, q queue.Queue, id int64, want queue.State) queue.Job {
		t.Helper()
		j, err := q.Get(context.Background(), id)
		if err != nil {
			t.Fatalf("Get(%d): %v", id, err)
		}
		if j.State != want {
			t.Fatalf("job %d state = %s, want %s", id, j.State, want)
		}
		return j
	}

	t.Run("SameCommitFromThreeRemotesIsOneJob", func(t *testing.T) {
		q, _, _ := setup(t)
		a := mustEnqueue(t, q, push("c1", "main", gh, "github:d1"))
		b := mustEnqueue(t, q, push("c1", "main", cb, "forgejo:d2"))
		c := mustEnqueue(t, q, push("c1", "main", fj, "forgejo:d3"))
		if !a.Created || b.Created || c.Created {
			t.Fatalf("Created = %v %v %v, want true false false", a.Created, b.Created, c.Created)
		}
		if b.JobID != a.JobID || c.JobID != a.JobID {
			t.Fatalf("job ids = %d %d %d, want one", a.JobID, b.JobID, c.JobID)
		}
		j := wantState(t, q, a.JobID, queue.Queued)
		if got, want := len(j.Remotes), 3; got != want {
			t.Fatalf("remotes = %v, want %d", j.Remotes, want)
		}
		jobs, err := q.List(context.Background(), queue.ListOptions{})
		if err != nil || len(jobs) != 1 {
			t.Fatalf("List = %d jobs, %v; want 1", len(jobs), err)
		}
	})

	t.Run("ReplayedDeliveryIsNoOp", func(t *testing.T) {
		q, _, _ := setup(t)
		a := mustEnqueue(t, q, push("c1", "main", gh, "github:d1"))
		// The same delivery id again, even claiming another remote, changes nothing.
		b := mustEnqueue(t, q, push("c1", "main", cb, "github:d1"))
		if !b.Replay || b.Created || b.JobID != a.JobID {
			t.Fatalf("replay result = %+v, want Replay of job %d", b, a.JobID)
		}
		if j := wantState(t, q, a.JobID, queue.Queued); len(j.Remotes) != 1 {
			t.Fatalf("remotes after replay = %v, want 1", j.Remotes)
		}
		// A replay of a finished job does not revive it.
		j := mustClaim(t, q, time.Minute)
		if err := q.Complete(context.Background(), j.ID, j.Token, nil); err != nil {
			t.Fatal(err)
		}
		if r := mustEnqueue(t, q, push("c1", "main", gh, "github:d1")); !r.Replay {
			t.Fatalf("replay after done = %+v", r)
		}
		wantState(t, q, a.JobID, queue.Done)
		wantEmpty(t, q)
	})

	t.Run("PruneDeliveries", func(t *testing.T) {
		q, clk, ctx := setup(t)
		a := mustEnqueue(t, q, push("c1", "main", gh, "github:old"))
		clk.Advance(48 * time.Hour)
		b := mustEnqueue(t, q, push("c2", "main", gh, "github:new"))
		n, err := q.PruneDeliveries(ctx, clk.Now().Add(-24*time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("PruneDeliveries = %d, %v; want 1 forgotten", n, err)
		}
		// The recent delivery is still a replay; the forgotten one is
		// caught by its job's key: still one job, nothing new.
		if r := mustEnqueue(t, q, push("c2", "main", gh, "github:new")); !r.Replay {
			t.Fatalf("recent delivery again = %+v, want a replay", r)
		}
		if r := mustEnqueue(t, q, push("c1", "main", gh, "github:old")); r.Created || r.JobID != a.JobID {
			t.Fatalf("forgotten delivery again = %+v, want job %d, not a new one", r, a.JobID)
		}
		_ = b
	})

	t.Run("ClaimCompleteOnce", func(t *testing.T) {
		q, _, ctx := setup(t)
		wantEmpty(t, q)
		a := mustEnqueue(t, q, push("c1", "main", gh, "github:d1"))
		j := mustClaim(t, q, time.Minute)
		if j.ID != a.JobID || j.State != queue.Running || j.Attempts != 1 || j.Token == "" || string(j.Payload) != `{"x":1}` {
			t.Fatalf("claimed %+v", j)
		}
		if len(j.Remotes) != 1 || j.Remotes[0] != gh {
			t.Fatalf("claimed remotes = %v, want [%v]", j.Remotes, gh)
		}
		wantEmpty(t, q)
		if err := q.Heartbeat(ctx, j.ID, "wrong", time.Minute); !errors.Is(err, queue.ErrLeaseLost) {
			t.Fatalf("Heartbeat(wrong token) = %v, want queue.ErrLeaseLost", err)
		}
		if err := q.Heartbeat(ctx, j.ID, j.Token, time.Minute); err != nil {
			t.Fatalf("Heartbeat = %v", err)
		}
		if err := q.Complete(ctx, j.ID, j.Token, []byte("ok")); err != nil {
			t.Fatalf("Complete = %v", err)
		}
		if err := q.Complete(ctx, j.ID, j.Token, nil); !errors.Is(err, queue.ErrLeaseLost) {
			t.Fatalf("second Complete = %v, want queue.ErrLeaseLost", err)
		}
		if _, err := q.Fail(ctx, j.ID, j.Token, "x"); !errors.Is(err, queue.ErrLeaseLost) {
			t.Fatalf("Fail after Complete = %v, want queue.ErrLeaseLost", err)
		}
		got := wantState(t, q, j.ID, queue.Done)
		if string(got.Result) != "ok" {
			t.Fatalf("result = %q, want ok", got.Result)
		}
		wantEmpty(t, q)
		if _, err := q.Get(ctx, 999999); !errors.Is(err, queue.ErrNotFound) {
			t.Fatalf("Get(unknown) = %v, want queue.ErrNotFound", err)
		}
	})

	t.Run("FailBacksOffThenDeadLetters", func(t *testing.T) {
		q, clk, ctx := setup(t)
		mustEnqueue(t, q, push("c1", "main", gh, "github:d1"))
		wantDelays := []time.Duration{time.Second, 2 * time.Second}
		for attempt := 1; attempt <= 3; attempt++ {
			j := mustClaim(t, q, time.Minute)
			if j.Attempts != attempt {
				t.Fatalf("attempts = %d, want %d", j.Attempts, attempt)
			}
			res, err := q.Fail(ctx, j.ID, j.Token, fmt.Sprintf("boom %d", attempt))
			if err != nil {
				t.Fatalf("Fail: %v", err)
			}
			if attempt == 3 {
				if res.State != queue.Dead {
					t.Fatalf("after last attempt state = %s, want dead", res.State)
				}
				if got := wantState(t, q, j.ID, queue.Dead); got.LastError != "boom 3" {
					t.Fatalf("last error = %q", got.LastError)
				}
				break
			}
			if want := clk.Now().Add(wantDelays[attempt-1]); res.State != queue.Queued || !res.RunAfter.Equal(want) {
				t.Fatalf("Fail = %+v, want queued until %v", res, want)
			}
			wantEmpty(t, q) // not before the backoff
			clk.Advance(wantDelays[attempt-1])
		}
		clk.Advance(time.Hour)
		wantEmpty(t, q)
	})

	t.Run("ExpiredLeaseIsReclaimed", func(t *testing.T) {
		q, clk, ctx := setup(t)
		mustEnqueue(t, q, push("c1", "main", gh, "github:d1"))
		first := mustClaim(t, q, 10*time.Second)
		clk.Advance(9 * time.Second)
		wantEmpty(t, q)
		if err := q.Heartbeat(ctx, first.ID, first.Token, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		clk.Advance(9 * time.Second)
		wantEmpty(t, q) // the heartbeat kept it
		clk.Advance(2 * time.Second)
		second := mustClaim(t, q, 10*time.Second)
		if second.ID != first.ID || second.Token == first.Token || second.Attempts != 2 || second.LastError != "lease expired" {
			t.Fatalf("reclaimed %+v", second)
		}
		if err := q.Complete(ctx, first.ID, first.Token, nil); !errors.Is(err, queue.ErrLeaseLost) {
			t.Fatalf("Complete by the dead worker = %v, want queue.ErrLeaseLost", err)
		}
		if err := q.Heartbeat(ctx, first.ID, first.Token, time.Minute); !errors.Is(err, queue.ErrLeaseLost) {
			t.Fatalf("Heartbeat by the dead worker = %v, want queue.ErrLeaseLost", err)
		}
		if err := q.Complete(ctx, second.ID, second.Token, nil); err != nil {
			t.Fatal(err)
		}
		wantState(t, q, first.ID, queue.Done)
	})

	t.Run("ReleaseGivesTheJobBackUncounted", func(t *testing.T) {
		q, _, ctx := setup(t)
		a := mustEnqueue(t, q, push("c1", "main", gh, "github:d1"))
		j := mustClaim(t, q, time.Hour)
		if err := q.Release(ctx, j.ID, "wrong"); !errors.Is(err, queue.ErrLeaseLost) {
			t.Fatalf("Release(wrong token) = %v, want queue.ErrLeaseLost", err)
		}
		if err := q.Release(ctx, j.ID, j.Token); err != nil {
			t.Fatalf("Release = %v", err)
		}
		if err := q.Complete(ctx, j.ID, j.Token, nil); !errors.Is(err, queue.ErrLeaseLost) {
			t.Fatalf("Complete after Release = %v, want queue.ErrLeaseLost", err)
		}
		again := mustClaim(t, q, time.Minute) // at once, not after the hour
		if again.ID != a.JobID || again.Attempts != 1 {
			t.Fatalf("claimed after release: job %d attempt %d, want job %d attempt 1", again.ID, again.Attempts, a.JobID)
		}
	})

	t.Run("ExpiredLeaseOnLastAttemptIsDead", func(t *testing.T) {
		q, clk, _ := setup(t)
		a := mustEnqueue(t, q, push("c1", "main", gh, "github:d1"))
		for range 3 {
			mustClaim(t, q, time.Second)
			clk.Advance(2 * time.Second)
		}
		wantEmpty(t, q)
		wantState(t, q, a.JobID, queue.Dead)
	})

	t.Run("NewerCommitSupersedesQueued", func(t *testing.T) {
		q, _, ctx := setup(t)
		a := mustEnqueue(t, q, push("c1", "main", gh, "github:d1"))
		running := mustClaim(t, q, time.Minute) // c1 runs: it is not cancelled
		b := mustEnqueue(t, q, push("c2", "main", gh, "github:d2"))
		other := mustEnqueue(t, q, push("x1", "dev", gh, "github:d3"))
		c := mustEnqueue(t, q, push("c3", "main", gh, "github:d4"))
		if running.ID != a.JobID {
			t.Fatalf("claimed %d, want %d", running.ID, a.JobID)
		}
		if !slices.Equal(c.Superseded, []int64{b.JobID}) {
			t.Fatalf("c3 superseded %v, want [%d]", c.Superseded, b.JobID)
		}
		if j := wantState(t, q, b.JobID, queue.Superseded); j.SupersededBy != c.JobID {
			t.Fatalf("superseded_by = %d, want %d", j.SupersededBy, c.JobID)
		}
		wantState(t, q, a.JobID, queue.Running)
		wantState(t, q, other.JobID, queue.Queued)
		wantState(t, q, c.JobID, queue.Queued)
		jobs, err := q.List(ctx, queue.ListOptions{States: []queue.State{queue.Queued}})
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, j := range jobs {
			ids = append(ids, j.ID)
		}
		if want := []int64{c.JobID, other.JobID}; !slices.Equal(ids, want) {
			t.Fatalf("queued = %v, want %v", ids, want)
		}
	})

	t.Run("LateOlderCommitIsRecordedNotDeployed", func(t *testing.T) {
		q, _, _ := setup(t)
		newer := push("c2", "main", gh, "github:d2")
		newer.Before = "c1"
		n := mustEnqueue(t, q, newer)
		old := mustEnqueue(t, q, push("c1", "main", gh, "github:d1"))
		if !old.Late || !old.Created || len(old.Superseded) != 0 {
			t.Fatalf("late enqueue = %+v, want Late and nothing superseded", old)
		}
		j := wantState(t, q, old.JobID, queue.Superseded)
		if j.Deploy || j.SupersededBy != n.JobID {
			t.Fatalf("late job deploy=%v superseded_by=%d, want false, %d", j.Deploy, j.SupersededBy, n.JobID)
		}
		wantState(t, q, n.JobID, queue.Queued)
	})

	t.Run("PullRequestCommitPushedToDeployBranchDeploys", func(t *testing.T) {
		q, _, _ := setup(t)
		pr := push("c1", "pull/7", gh, "github:d1")
		pr.Deploy = false
		a := mustEnqueue(t, q, pr)
		if j := wantState(t, q, a.JobID, queue.Queued); j.Deploy {
			t.Fatalf("pull request job deploys")
		}
		b := mustEnqueue(t, q, push("c1", "main", gh, "github:d2"))
		if b.JobID != a.JobID || b.Created {
			t.Fatalf("push of the same commit = %+v, want job %d", b, a.JobID)
		}
		if j := wantState(t, q, a.JobID, queue.Queued); !j.Deploy || j.Branch != "main" {
			t.Fatalf("after the push to main: deploy=%v branch=%q, want true, main", j.Deploy, j.Branch)
		}
	})

	t.Run("ClaimByKind", func(t *testing.T) {
		q, _, _ := setup(t)
		mustEnqueue(t, q, queue.EnqueueRequest{Kind: "build", Key: "build:1", Repo: "homelab", Commit: "c1", Remote: gh})
		if _, err := q.Claim(context.Background(), queue.ClaimRequest{Worker: "w", Kinds: []string{queue.KindEval}, Lease: time.Minute}); !errors.Is(err, queue.ErrEmpty) {
			t.Fatalf("Claim(eval) = %v, want queue.ErrEmpty", err)
		}
		j, err := q.Claim(context.Background(), queue.ClaimRequest{Worker: "w", Kinds: []string{"build", queue.KindEval}, Lease: time.Minute})
		if err != nil || j.Kind != "build" {
			t.Fatalf("Claim(build) = %+v, %v", j, err)
		}
	})

	t.Run("ConcurrentClaimsTakeEachJobOnce", func(t *testing.T) {
		q, _, ctx := setup(t)
		const jobs, workers = 40, 6
		for i := range jobs {
			mustEnqueue(t, q, push(fmt.Sprintf("c%d", i), fmt.Sprintf("b%d", i), gh, fmt.Sprintf("github:%d", i)))
		}
		var mu sync.Mutex
		seen := map[int64]int{}
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Go(func() {
				for {
					j, err := q.Claim(ctx, queue.ClaimRequest{Worker: fmt.Sprint("w", w), Lease: time.Minute})
					if errors.Is(err, queue.ErrEmpty) {
						return
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					seen[j.ID]++
					mu.Unlock()
					if err := q.Complete(ctx, j.ID, j.Token, nil); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if len(seen) != jobs {
			t.Fatalf("claimed %d distinct jobs, want %d", len(seen), jobs)
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("job %d claimed %d times", id, n)
			}
		}
	})

	t.Run("ConcurrentDuplicateEnqueues", func(t *testing.T) {
		q, _, _ := setup(t)
		var wg sync.WaitGroup
		results := make([]queue.EnqueueResult, 12)
		errs := make([]error, 12)
		for i := range results {
			wg.Go(func() {
				r := []queue.Remote{gh, cb, fj}[i%3]
				results[i], errs[i] = q.Enqueue(context.Background(), push("c1", "main", r, fmt.Sprintf("d%d", i%6)))
			})
		}
		wg.Wait()
		created, replays := 0, 0
		for i, r := range results {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if r.Created {
				created++
			}
			if r.Replay {
				replays++
			}
			if r.JobID != results[0].JobID {
				t.Fatalf("job ids differ: %d vs %d", r.JobID, results[0].JobID)
			}
		}
		if created != 1 || replays != 6 {
			t.Fatalf("created=%d replays=%d, want 1 and 6", created, replays)
		}
		if j := wantState(t, q, results[0].JobID, queue.Queued); len(j.Remotes) != 3 {
			t.Fatalf("remotes = %v, want 3", j.Remotes)
		}
	})
}
