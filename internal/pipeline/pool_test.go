package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/queue/sqlite"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/testenv"
)

func openQueue(t *testing.T, maxAttempts int) queue.Queue {
	t.Helper()
	q, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "queue.db"), queue.Options{MaxAttempts: maxAttempts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func enqueue(t *testing.T, q queue.Queue, commit string) int64 {
	t.Helper()
	res, err := q.Enqueue(context.Background(), queue.EnqueueRequest{
		Kind: queue.KindEval, Key: "homelab@" + commit, Repo: "homelab", Branch: "main", Commit: commit,
		Remote: queue.Remote{Forge: "github", URL: "https://github.com/rain/homelab", FullName: "rain/homelab"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.JobID
}

func jobState(t *testing.T, q queue.Queue, id int64) queue.Job {
	t.Helper()
	j, err := q.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// syncForge records commit statuses from several goroutines.
type syncForge struct {
	mu  sync.Mutex
	got []string // "<commit> <context> <state> <target url>"
}

func (f *syncForge) SetStatus(_ context.Context, _, commit string, st forge.Status) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, strings.Join([]string{commit, st.Context, string(st.State), st.TargetURL}, " "))
	return nil
}

func (f *syncForge) statuses() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

// runPool runs p until stop returns true, then stops it and waits.
func runPool(t *testing.T, p *pipeline.Pool, stop func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	testenv.Eventually(t, 10*time.Second, stop, "pool did not get there")
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("pool did not stop")
	}
}

// TestPoolOutcomes: a job the processor completes is done with its result;
// one that fails its last attempt is dead, and its commit gets "pending"
// then "error", linked to the dashboard page of its evaluation where it
// has one (never to the JSON API).
func TestPoolOutcomes(t *testing.T) {
	q := openQueue(t, 1)
	good, bad := enqueue(t, q, strings.Repeat("a", 40)), enqueue(t, q, strings.Repeat("b", 40))
	ff := &syncForge{}
	p := &pipeline.Pool{
		Queue: q, Workers: 2, Lease: time.Minute, Idle: 10 * time.Millisecond,
		Statuses: &pipeline.Statuses{For: func(queue.Remote) forge.StatusClient { return ff }, PublicURL: "http://farm.test/",
			Evaluations: evalsByJob{bad: 77}},
		Process: func(_ context.Context, job queue.Job) ([]byte, error) {
			if job.ID == bad {
				return nil, errors.New("fetch failed")
			}
			return []byte(`{"ok":true}`), nil
		},
	}
	runPool(t, p, func() bool {
		return jobState(t, q, good).State == queue.Done && jobState(t, q, bad).State == queue.Dead && len(ff.statuses()) == 3
	})
	if r := string(jobState(t, q, good).Result); r != `{"ok":true}` {
		t.Errorf("result %q", r)
	}
	want := map[string]bool{
		strings.Repeat("a", 40) + " farm/eval pending ":                                true, // no evaluation yet
		strings.Repeat("b", 40) + " farm/eval pending http://farm.test/evaluations/77": true,
		strings.Repeat("b", 40) + " farm/eval error http://farm.test/evaluations/77":   true,
	}
	for _, s := range ff.statuses() {
		if !want[s] {
			t.Errorf("unexpected status %q; want %v", s, want)
		}
	}
}

// TestPoolReleasesAtShutdown: stopping the pool gives the job in progress
// back to the queue at once, without counting the attempt.
func TestPoolReleasesAtShutdown(t *testing.T) {
	q := openQueue(t, 3)
	id := enqueue(t, q, strings.Repeat("c", 40))
	var started atomic.Bool
	p := &pipeline.Pool{Queue: q, Workers: 1, Lease: time.Hour, Process: func(ctx context.Context, _ queue.Job) ([]byte, error) {
		started.Store(true)
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	runPool(t, p, started.Load)
	j := jobState(t, q, id)
	if j.State != queue.Queued {
		t.Fatalf("job %s after shutdown, want queued", j.State)
	}
	if _, err := q.Claim(context.Background(), queue.ClaimRequest{Worker: "next", Kinds: []string{queue.KindEval}, Lease: time.Minute}); err != nil {
		t.Fatalf("released job not claimable at once: %v", err)
	}
}

// TestPoolHeartbeatKeepsLease: a job running three times its lease stays
// with its worker (heartbeats at a third of the lease) while another worker
// keeps claiming, so it runs once.
func TestPoolHeartbeatKeepsLease(t *testing.T) {
	q := openQueue(t, 3)
	id := enqueue(t, q, strings.Repeat("d", 40))
	var runs atomic.Int32
	p := &pipeline.Pool{Queue: q, Workers: 2, Lease: 300 * time.Millisecond, Idle: 20 * time.Millisecond,
		Process: func(ctx context.Context, _ queue.Job) ([]byte, error) {
			runs.Add(1)
			select {
			case <-time.After(time.Second):
				return []byte(`{}`), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}}
	runPool(t, p, func() bool { return jobState(t, q, id).State == queue.Done })
	if n := runs.Load(); n != 1 {
		t.Errorf("job ran %d times, want once", n)
	}
}

// lostLease fails every heartbeat as if another worker had the job.
type lostLease struct{ queue.Queue }

func (lostLease) Heartbeat(context.Context, int64, string, time.Duration) error {
	return queue.ErrLeaseLost
}

// TestPoolAbandonsLostLease: when a heartbeat fails the processor's
// context ends, so the worker stops working on a job it no longer holds.
func TestPoolAbandonsLostLease(t *testing.T) {
	q := openQueue(t, 3)
	enqueue(t, q, strings.Repeat("e", 40))
	var cancelled atomic.Bool
	p := &pipeline.Pool{Queue: lostLease{q}, Workers: 1, Lease: 90 * time.Millisecond, Idle: time.Hour,
		Process: func(ctx context.Context, _ queue.Job) ([]byte, error) {
			select {
			case <-ctx.Done():
				cancelled.Store(true)
				return nil, ctx.Err()
			case <-time.After(10 * time.Second):
				return []byte(`{}`), nil
			}
		}}
	runPool(t, p, cancelled.Load)
}

// evalsByJob is a pipeline.EvalFinder: job id -> evaluation id.
type evalsByJob map[int64]int64

func (e evalsByJob) EvaluationByJob(_ context.Context, job int64) (state.Evaluation, error) {
	id, ok := e[job]
	if !ok {
		return state.Evaluation{}, fmt.Errorf("evaluation of job %d: %w", job, state.ErrNotFound)
	}
	return state.Evaluation{ID: id, JobID: job}, nil
}

// TestPoolWorkerNames: a job's worker names the instance that claimed it,
// so that with several builders on one queue the API tells which one runs
// it; without an Instance it is this process's host name and pid.
func TestPoolWorkerNames(t *testing.T) {
	for _, tc := range []struct{ instance, want string }{
		{"builder-b", "builder-b/w0"},
		{"", pipeline.DefaultInstance() + "/w0"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			q := openQueue(t, 3)
			id := enqueue(t, q, strings.Repeat("d", 40))
			var worker atomic.Value
			p := &pipeline.Pool{Queue: q, Workers: 1, Lease: time.Hour, Instance: tc.instance, Process: func(ctx context.Context, job queue.Job) ([]byte, error) {
				worker.Store(jobState(t, q, job.ID).Worker)
				<-ctx.Done()
				return nil, ctx.Err()
			}}
			runPool(t, p, func() bool { return worker.Load() != nil })
			if got := worker.Load(); got != tc.want {
				t.Errorf("job %d claimed by worker %q, want %q", id, got, tc.want)
			}
		})
	}
	if inst := pipeline.DefaultInstance(); !strings.HasSuffix(inst, ":"+strconv.Itoa(os.Getpid())) {
		t.Errorf("DefaultInstance() = %q, want it to end in :<pid>", inst)
	}
}
