package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/queue"
)

// Processor runs one claimed evaluation job and returns the result stored
// with it. It must return promptly when ctx ends (the lease was lost or the
// builder stops). (*Pipeline).Process is the production one.
type Processor func(ctx context.Context, job queue.Job) ([]byte, error)

// JobQueue is what the pool needs of the queue.
type JobQueue interface {
	Claim(ctx context.Context, req queue.ClaimRequest) (queue.Job, error)
	Heartbeat(ctx context.Context, id int64, token string, lease time.Duration) error
	Release(ctx context.Context, id int64, token string) error
	Fail(ctx context.Context, id int64, token, reason string) (queue.FailResult, error)
	Complete(ctx context.Context, id int64, token string, result []byte) error
}

// Pool is the builder's one job loop: Workers workers claim evaluation
// jobs, heartbeat at a third of the lease while Process runs, record the
// outcome, and give a job back at once when the builder stops.
type Pool struct {
	Queue   JobQueue
	Workers int
	Lease   time.Duration // default 2m
	Process Processor
	Log     *slog.Logger
	// Idle is the wait between claims when the queue is empty; default
	// 500ms.
	Idle time.Duration
	// Wake, if set, cuts an idle wait short: the webhook handler signals
	// it after queueing a new job.
	Wake <-chan struct{}
	// Instance names this builder among the farm's instances; its workers
	// claim as "<Instance>/w<n>" (what /api/jobs shows as a job's worker).
	// Empty means "<hostname>:<pid>".
	Instance string
	// Statuses, if set, tells the forges an evaluation started ("pending")
	// and when it went to the dead letter state ("error"); the pipeline
	// reports the outcome.
	Statuses *Statuses
}

// Run runs the workers until ctx ends and returns when all have stopped.
// A job in progress then is released back to the queue.
func (p *Pool) Run(ctx context.Context) {
	instance := p.Instance
	if instance == "" {
		instance = DefaultInstance()
	}
	var wg sync.WaitGroup
	for i := range p.Workers {
		wg.Go(func() { p.work(ctx, fmt.Sprintf("%s/w%d", instance, i)) })
	}
	wg.Wait()
}

// DefaultInstance names this process among a farm's builders:
// "<hostname>:<pid>".
func DefaultInstance() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "builder"
	}
	return host + ":" + strconv.Itoa(os.Getpid())
}

func (p *Pool) log() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}

func (p *Pool) lease() time.Duration {
	if p.Lease <= 0 {
		return 2 * time.Minute
	}
	return p.Lease
}

func (p *Pool) work(ctx context.Context, name string) {
	idle := p.Idle
	if idle <= 0 {
		idle = 500 * time.Millisecond
	}
	log := p.log().With("worker", name)
	for ctx.Err() == nil {
		// The claim is not cut short by a shutdown: a claim the queue
		// committed must come back here, to be run or released, not be
		// lost to a cancelled answer and wait out its lease.
		claimCtx, cancelClaim := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		job, err := p.Queue.Claim(claimCtx, queue.ClaimRequest{Worker: name, Kinds: []string{queue.KindEval}, Lease: p.lease()})
		cancelClaim()
		if err != nil {
			if !errors.Is(err, queue.ErrEmpty) && ctx.Err() == nil {
				log.Error("claim", "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(idle):
			case <-p.Wake: // a webhook just queued work
			}
			continue
		}
		p.run(ctx, log, job)
	}
}

// run runs one job, heartbeating at a third of the lease, and records the
// outcome. When the builder stops mid-job, the job is released.
func (p *Pool) run(ctx context.Context, log *slog.Logger, job queue.Job) {
	log = log.With("job", job.ID, "repo", job.Repo, "commit", job.Commit, "attempt", job.Attempts)
	log.Info("job claimed")
	var sending sync.WaitGroup
	defer sending.Wait()
	p.status(ctx, &sending, log, job, forge.Status{State: forge.StatePending, Description: "evaluating"})
	jobCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		p.heartbeat(jobCtx, cancel, log, job)
	}()
	result, err := p.Process(jobCtx, job)
	cancel()
	<-hbDone
	if ctx.Err() != nil {
		// Stopping: give the job back at once rather than making it wait
		// out its lease. Should that fail, the lease expires as after a crash.
		relCtx, relCancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer relCancel()
		if err := p.Queue.Release(relCtx, job.ID, job.Token); err != nil {
			log.Warn("job left to its lease at shutdown", "err", err)
			return
		}
		log.Info("job released at shutdown")
		return
	}
	// Record the outcome even though jobCtx is gone.
	recCtx, recCancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer recCancel()
	if err != nil {
		res, ferr := p.Queue.Fail(recCtx, job.ID, job.Token, err.Error())
		if ferr != nil {
			log.Error("record failure", "err", ferr)
			return
		}
		log.Warn("job failed", "err", err, "next", res.State, "run_after", res.RunAfter)
		if res.State == queue.Dead {
			p.status(ctx, &sending, log, job, forge.Status{State: forge.StateError, Description: "evaluation failed: " + err.Error()})
		}
		return
	}
	if err := p.Queue.Complete(recCtx, job.ID, job.Token, result); err != nil {
		log.Error("record completion", "err", err)
		return
	}
	log.Info("job completed")
}

// heartbeat renews the lease at a third of it until ctx ends; when renewal
// fails the job is abandoned (cancel).
func (p *Pool) heartbeat(ctx context.Context, cancel context.CancelFunc, log *slog.Logger, job queue.Job) {
	t := time.NewTicker(p.lease() / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := p.Queue.Heartbeat(ctx, job.ID, job.Token, p.lease()); err != nil {
				if ctx.Err() == nil {
					log.Warn("heartbeat failed; abandoning job", "err", err)
				}
				cancel()
				return
			}
		}
	}
}

// status sends commit statuses in the background; wg lets run wait for it.
func (p *Pool) status(ctx context.Context, wg *sync.WaitGroup, log *slog.Logger, job queue.Job, st forge.Status) {
	if p.Statuses == nil {
		return
	}
	wg.Go(func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if err := p.Statuses.Send(sctx, job, st, nil); err != nil {
			log.Warn("commit status", "err", err)
		}
	})
}
