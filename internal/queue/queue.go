package queue

import (
	"context"
	"errors"
	"time"
)

// Job kinds. KindEval is the only one enqueued by webhooks; build workers
// may enqueue their own kinds with their own idempotency keys.
const (
	KindEval = "eval"
)

// State is where a job is in its life.
type State string

// The states of a job. Queued and Running are live; the others are final,
// except that Fail moves a Running job back to Queued while attempts remain.
const (
	Queued     State = "queued"     // waiting for a worker (possibly until RunAfter)
	Running    State = "running"    // claimed; the lease runs until LeaseUntil
	Done       State = "done"       // completed by its worker
	Dead       State = "dead"       // failed MaxAttempts times: the dead letter state
	Superseded State = "superseded" // replaced by a newer commit on its branch before it ran
)

// Errors callers branch on.
var (
	// ErrEmpty is returned by Claim when no job is ready.
	ErrEmpty = errors.New("queue: no job ready")
	// ErrLeaseLost is returned by Heartbeat, Complete and Fail when the job
	// is no longer held under the given token: its lease expired and another
	// worker claimed it, or it already finished.
	ErrLeaseLost = errors.New("queue: lease lost")
	// ErrNotFound is returned by Get for an unknown job id.
	ErrNotFound = errors.New("queue: job not found")
)

// Remote is one place a commit arrived from. The same commit of the same
// repository may arrive from several remotes (GitHub, a Codeberg mirror, a
// self-hosted Forgejo); the job remembers them all so that statuses go to
// every one.
type Remote struct {
	Forge    string `json:"forge"`     // "github" or "forgejo"
	URL      string `json:"url"`       // the repository's web URL as configured
	FullName string `json:"full_name"` // "owner/name" on that forge
}

// EnqueueRequest describes work to add.
type EnqueueRequest struct {
	Kind string // KindEval, or a worker-defined kind
	// Key is the idempotency key: one job exists per key. For evaluations it
	// is the repository and commit, so a commit arriving from three remotes
	// is one job.
	Key    string
	Repo   string // the configured repository name, e.g. "homelab"
	Branch string // "" when the work has no branch (e.g. a tag)
	Commit string // full commit id
	Before string // the commit the branch pointed to before the push, if known
	// Deploy marks work whose result may be deployed (a push to the
	// repository's deploy branch). Pull requests are build-only.
	Deploy bool
	// Supersede cancels queued jobs of the same kind, repository and branch
	// that were enqueued earlier (a newer commit makes them pointless).
	Supersede bool
	Remote    Remote
	// DeliveryKey identifies the webhook delivery ("github:<X-GitHub-Delivery>").
	// A replayed delivery is a no-op. Empty means no delivery dedupe.
	DeliveryKey string
	Payload     []byte // opaque to the queue, handed back to the worker
	MaxAttempts int    // 0 means the queue's default
}

// EnqueueResult says what Enqueue did.
type EnqueueResult struct {
	JobID int64
	// Created is true when a new job was made; false when the key already
	// had one (the remote was added to it) or the delivery was a replay.
	Created bool
	// Replay is true when the delivery key had been seen before; nothing changed.
	Replay bool
	// Superseded lists the queued jobs this one cancelled.
	Superseded []int64
	// Late is true when the commit is older than one already queued or done on
	// its branch (its id is that job's Before): it is recorded, in state
	// Superseded, and never deployed.
	Late bool
}

// ClaimRequest asks for one ready job.
type ClaimRequest struct {
	Worker string        // names the claimer, for the API and logs
	Kinds  []string      // which kinds this worker runs; empty means all
	Lease  time.Duration // how long the job is held without a heartbeat
}

// Job is a unit of work as stored.
type Job struct {
	ID          int64     `json:"id"`
	Kind        string    `json:"kind"`
	Key         string    `json:"key"`
	Repo        string    `json:"repo"`
	Branch      string    `json:"branch,omitempty"`
	Commit      string    `json:"commit"`
	Before      string    `json:"before,omitempty"`
	Deploy      bool      `json:"deploy"`
	State       State     `json:"state"`
	Attempts    int       `json:"attempts"`
	MaxAttempts int       `json:"max_attempts"`
	RunAfter    time.Time `json:"run_after"`
	Worker      string    `json:"worker,omitempty"`
	LeaseUntil  time.Time `json:"lease_until,omitzero"`
	// Token proves the current claim; it is set only on a job returned by Claim.
	Token        string    `json:"-"`
	LastError    string    `json:"last_error,omitempty"`
	Result       []byte    `json:"-"`
	Payload      []byte    `json:"-"`
	SupersededBy int64     `json:"superseded_by,omitempty"`
	Remotes      []Remote  `json:"remotes"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// FailResult says what Fail did with the job.
type FailResult struct {
	State    State     // Queued (will be retried) or Dead
	RunAfter time.Time // when a Queued job becomes claimable again
}

// ListOptions filters List. Zero values mean no filter.
type ListOptions struct {
	Kind   string
	States []State
	Repo   string
	Limit  int // default 100
}

// Queue is durable work shared by webhooks and workers.
//
// Implementations are safe for concurrent use by many goroutines and, for
// the PostgreSQL one, by many processes. Every method that returns nil has
// made its change durable. Errors other than the sentinels above are storage
// failures that the caller may retry.
type Queue interface {
	// Enqueue adds work, deduplicating by DeliveryKey (a replay changes
	// nothing) and by Key (one job per key; every remote is remembered).
	Enqueue(ctx context.Context, req EnqueueRequest) (EnqueueResult, error)

	// Claim takes the oldest ready job of the given kinds: queued with
	// RunAfter passed, or running with an expired lease (its worker died).
	// It returns ErrEmpty when there is none. A job found with an expired
	// lease after its last allowed attempt goes to Dead instead.
	Claim(ctx context.Context, req ClaimRequest) (Job, error)

	// Heartbeat extends the lease of a running job held under token.
	Heartbeat(ctx context.Context, id int64, token string, lease time.Duration) error

	// Complete marks a job held under token Done and stores result.
	Complete(ctx context.Context, id int64, token string, result []byte) error

	// Fail gives a job held under token back to the queue with exponential
	// backoff, or to Dead after its last attempt.
	Fail(ctx context.Context, id int64, token string, reason string) (FailResult, error)

	// Release gives a job held under token back to the queue at once,
	// without counting the attempt: for a worker that stops cleanly (the
	// builder shuts down) rather than making the job wait out its lease.
	Release(ctx context.Context, id int64, token string) error

	// Get returns one job with its remotes.
	Get(ctx context.Context, id int64) (Job, error)

	// List returns jobs, newest first, with their remotes.
	List(ctx context.Context, opts ListOptions) ([]Job, error)

	// PruneDeliveries forgets the delivery ids received before t (forges
	// redeliver within hours, so weeks of them are plenty) and returns how
	// many it forgot. A delivery forgotten and then replayed is deduplicated
	// by its job's key instead.
	PruneDeliveries(ctx context.Context, before time.Time) (int64, error)

	// Close releases the storage.
	Close() error
}

// Options configure an implementation. Zero values take the defaults.
type Options struct {
	Now         func() time.Time // clock; time.Now by default
	MaxAttempts int              // default 5
	BackoffBase time.Duration    // first retry delay; default 10s
	BackoffMax  time.Duration    // cap on the retry delay; default 30m
}

// WithDefaults fills in zero fields.
func (o Options) WithDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 10 * time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 30 * time.Minute
	}
	return o
}

// Backoff is the delay before attempt number attempts+1, after attempts
// failed ones: base, 2·base, 4·base, … capped at max.
func (o Options) Backoff(attempts int) time.Duration {
	d := o.BackoffBase
	for i := 1; i < attempts; i++ {
		d *= 2
		if d >= o.BackoffMax {
			return o.BackoffMax
		}
	}
	return min(d, o.BackoffMax)
}

// EvalKey is the idempotency key of the evaluation of commit in repo.
func EvalKey(repo, commit string) string { return KindEval + ":" + repo + ":" + commit }
