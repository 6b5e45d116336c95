package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/queue"
)

// evaluator runs one claimed evaluation job and returns its result. It must
// return promptly when ctx ends (the lease was lost or the builder stops).
type evaluator func(ctx context.Context, job queue.Job) ([]byte, error)

// placeholderEvaluator stands in for evaluation until issue 4 brings the
// real one: it holds the job for d, then reports it done. Tests and the demo
// use it to exercise claims, leases and crash recovery.
func placeholderEvaluator(d time.Duration) evaluator {
	return func(ctx context.Context, job queue.Job) ([]byte, error) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return []byte(`{"placeholder":true}`), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// workerPool claims jobs from the queue and runs them.
type workerPool struct {
	q     queue.Queue
	n     int
	lease time.Duration
	eval  evaluator
	log   *slog.Logger
	idle  time.Duration // wait between claims when the queue is empty; default 500ms
	// wake, if set, cuts an idle wait short: the webhook handler signals it
	// after queueing a new job (buffered, one slot; sends never block).
	wake chan struct{}
	// statuses, if set, tells the forges an evaluation started ("pending")
	// and when it went to the dead letter state ("error"). Issue 4's
	// evaluator reports the outcome with per-host results.
	statuses *statusSender
}

// start runs n workers until ctx ends; wg tracks them.
func (p workerPool) start(ctx context.Context, wg *sync.WaitGroup) {
	if p.idle == 0 {
		p.idle = 500 * time.Millisecond
	}
	for i := range p.n {
		wg.Go(func() { p.work(ctx, fmt.Sprintf("w%d", i)) })
	}
}

func (p workerPool) work(ctx context.Context, name string) {
	log := p.log.With(logWorker, name)
	for ctx.Err() == nil {
		job, err := p.q.Claim(ctx, queue.ClaimRequest{Worker: name, Kinds: []string{queue.KindEval}, Lease: p.lease})
		if err != nil {
			if !errors.Is(err, queue.ErrEmpty) && ctx.Err() == nil {
				log.Error("claim", logErr, err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(p.idle):
			case <-p.wake: // a webhook just queued work
			}
			continue
		}
		p.run(ctx, log, job)
	}
}

// run runs one job, heartbeating at a third of the lease, and records the
// outcome. When the builder stops mid-job, the job is left to its lease.
func (p workerPool) run(ctx context.Context, log *slog.Logger, job queue.Job) {
	log = log.With(logJob, job.ID, logRepo, job.Repo, logCommit, job.Commit, logAttempt, job.Attempts)
	log.Info("job claimed")
	var sending sync.WaitGroup
	defer sending.Wait()
	p.status(ctx, &sending, log, job, forge.Status{State: forge.StatePending, Description: "evaluating"})
	jobCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		t := time.NewTicker(p.lease / 3)
		defer t.Stop()
		for {
			select {
			case <-jobCtx.Done():
				return
			case <-t.C:
				if err := p.q.Heartbeat(jobCtx, job.ID, job.Token, p.lease); err != nil {
					if jobCtx.Err() == nil {
						log.Warn("heartbeat failed; abandoning job", logErr, err)
					}
					cancel()
					return
				}
			}
		}
	}()
	result, err := p.eval(jobCtx, job)
	cancel()
	<-hbDone
	if ctx.Err() != nil {
		// Stopping: give the job back at once rather than making it wait
		// out its lease. Should that fail, the lease expires as after a crash.
		relCtx, relCancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer relCancel()
		if err := p.q.Release(relCtx, job.ID, job.Token); err != nil {
			log.Warn("job left to its lease at shutdown", logErr, err)
			return
		}
		log.Info("job released at shutdown")
		return
	}
	// Record the outcome even though jobCtx is gone.
	recCtx, recCancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer recCancel()
	if err != nil {
		res, ferr := p.q.Fail(recCtx, job.ID, job.Token, err.Error())
		if ferr != nil {
			log.Error("record failure", logErr, ferr)
			return
		}
		log.Warn("job failed", logErr, err, logNext, res.State, logRunAfter, res.RunAfter)
		if res.State == queue.Dead {
			p.status(ctx, &sending, log, job, forge.Status{State: forge.StateError, Description: "evaluation failed: " + err.Error()})
		}
		return
	}
	if err := p.q.Complete(recCtx, job.ID, job.Token, result); err != nil {
		log.Error("record completion", logErr, err)
		return
	}
	log.Info("job completed")
}

// status sends commit statuses in the background; wg lets run wait for it.
func (p workerPool) status(ctx context.Context, wg *sync.WaitGroup, log *slog.Logger, job queue.Job, st forge.Status) {
	if p.statuses == nil {
		return
	}
	wg.Go(func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if err := p.statuses.send(sctx, job, st, nil); err != nil {
			log.Warn("commit status", logErr, err)
		}
	})
}
