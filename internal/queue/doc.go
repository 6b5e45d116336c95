// Package queue holds the farm's durable work: evaluations of pushed commits
// (and, later, the builds they fan out to), each enqueued under an
// idempotency key, claimed by a worker with a lease, kept alive by
// heartbeats, completed, or failed with exponential backoff until a maximum
// number of attempts sends it to the dead letter state.
//
// A worker's life with a Queue:
//
//	for {
//		job, err := q.Claim(ctx, queue.ClaimRequest{Worker: id, Kinds: []string{queue.KindEval}, Lease: time.Minute})
//		if errors.Is(err, queue.ErrEmpty) { wait; continue }
//		// run the job, calling q.Heartbeat(ctx, job.ID, job.Token, time.Minute) well inside the lease;
//		// stop at once when Heartbeat returns ErrLeaseLost (another worker owns the job now).
//		err = q.Complete(ctx, job.ID, job.Token, result)  // or q.Fail(ctx, job.ID, job.Token, reason)
//	}
//
// A worker that dies (SIGKILL, power loss) simply stops heartbeating: when
// its lease expires the job is claimable again and its attempt counts.
// Complete and Fail with a stale token return ErrLeaseLost, so a job is
// completed at most once even when two workers raced for it.
//
// Deduplication and ordering, all decided inside Enqueue's transaction:
//
//   - DeliveryKey ("github:<X-GitHub-Delivery>"): a delivery seen before is
//     a replay; Enqueue changes nothing and returns Replay with its job.
//   - Key (EvalKey(repo, commit)): one job per key. The same commit arriving
//     from another remote adds that remote to the job (Job.Remotes) and
//     creates nothing; a commit first seen as build-only work (a pull
//     request) that is then pushed to the deploy branch becomes deployable.
//   - Supersede: a new job cancels the queued (not yet running) jobs of the
//     same kind, repository and branch enqueued before it; they end in
//     Superseded with SupersededBy set.
//   - Late arrival: a commit that an existing job of its branch names as
//     its Before is older than that job. It is recorded (Late, state
//     Superseded, Deploy false) so it can be built on request, but never
//     queued to deploy over the newer commit. Deploy manifests carry their
//     own sequence numbers as the last line of defence.
//
// Group commit (queue/sqlite): concurrent Enqueue calls share one
// transaction and one fsync; each call still returns only after the
// transaction holding its job has committed.
//
// Two implementations pass the one contract suite in queue/queuetest
// (queuetest.RunContractTests): queue/sqlite (embedded, the default) and
// queue/postgres (several builder instances sharing work).
package queue
