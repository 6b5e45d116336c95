package farmapi

import "time"

// The rollout event types. A rollout offers a deploy-branch commit (or a
// rollback) to the fleet wave by wave; each offered host gets a HostDesired
// event as before.
const (
	RolloutStarted EventType = "rollout.started" // RolloutData: a new rollout (it superseded the active one, if any)
	RolloutWave    EventType = "rollout.wave"    // RolloutData: a wave's hosts were offered their manifests
	RolloutHalted  EventType = "rollout.halted"  // RolloutHaltedData: once per halt
	RolloutResumed EventType = "rollout.resumed" // RolloutData: an admin resumed a halted rollout
	RolloutEnded   EventType = "rollout.ended"   // RolloutData: complete, aborted or superseded (Status, Reason)
	// HostWake asks for a host to be woken again (HostWakeData): a rollout
	// passed over it asleep, and it is to be updated when it wakes.
	HostWake EventType = "host.wake"
)

// HostWakeData is the payload of HostWake: the host, and the seq of the
// manifest it is to fetch once awake.
type HostWakeData struct {
	Host    string `json:"host"`
	Seq     uint64 `json:"seq"`
	Rollout int64  `json:"rollout"`
}

// RolloutData is the payload of RolloutStarted, RolloutWave, RolloutResumed
// and RolloutEnded.
type RolloutData struct {
	Rollout int64  `json:"rollout"`
	Repo    string `json:"repo"`
	Commit  string `json:"commit"`
	Kind    string `json:"kind"`   // "push" or "rollback"
	Status  string `json:"status"` // "progressing", "halted", "complete", "aborted", "superseded"
	Wave    int    `json:"wave"`
	// Hosts are the hosts offered (RolloutWave).
	Hosts []string `json:"hosts,omitempty"`
	// Reason says why it ended (RolloutEnded), e.g. "superseded by <commit>".
	Reason string `json:"reason,omitempty"`
}

// RolloutHaltedData is the payload of RolloutHalted: which host halted
// which wave, and why. Later waves keep their closures until an admin
// resumes or aborts the rollout, or a newer commit supersedes it.
type RolloutHaltedData struct {
	Rollout int64  `json:"rollout"`
	Repo    string `json:"repo"`
	Commit  string `json:"commit"`
	Kind    string `json:"kind"`
	Wave    int    `json:"wave"`
	Host    string `json:"host"`
	Reason  string `json:"reason"` // "failed", "rolled back" or "timeout"
	Detail  string `json:"detail,omitempty"`
	// Seq is the halting host's manifest seq: its report on that manifest
	// is the reason of the halt, told of by this event alone.
	Seq uint64 `json:"seq,omitempty"`
}

// RollbackRequest is the body of POST /api/rollouts (admin token): roll
// the fleet, or the listed hosts, back to the closures they had at an
// earlier deployed commit, as new manifests with higher seqs, through the
// waves. The answer is 201 with the new Rollout; a commit that was never
// deployed, an unknown host or a closure no longer in the cache is 4xx
// with {"error": "..."} saying which.
type RollbackRequest struct {
	// To is the commit: its full id or a unique prefix of it.
	To string `json:"to"`
	// Hosts limits the rollback to these hosts; empty: every host the
	// commit deployed.
	Hosts []string `json:"hosts,omitempty"`
	// Repo names the repository when several deploy; empty: the one whose
	// deploy branch had the commit.
	Repo string `json:"repo,omitempty"`
}

// Rollout is a rollout as the API shows it (GET /api/rollouts/{id}, the
// list of active ones, and the answer to POST /api/rollouts).
type Rollout struct {
	ID      int64         `json:"id"`
	Repo    string        `json:"repo"`
	Commit  string        `json:"commit"`
	Kind    string        `json:"kind"`
	Status  string        `json:"status"`
	Wave    int           `json:"wave"` // the wave being offered
	Started time.Time     `json:"started"`
	Ended   *time.Time    `json:"ended,omitempty"`
	Reason  string        `json:"reason,omitempty"` // why it ended
	Halt    *RolloutHalt  `json:"halt,omitempty"`
	Hosts   []RolloutHost `json:"hosts"` // by wave, then name
}

// RolloutHalt says why a rollout halted.
type RolloutHalt struct {
	Host   string    `json:"host"`
	Wave   int       `json:"wave"`
	Reason string    `json:"reason"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}

// RolloutHost is one host of a rollout.
type RolloutHost struct {
	Host      string `json:"host"`
	Wave      int    `json:"wave"`
	StorePath string `json:"store_path"`
	Offered   bool   `json:"offered"`
	// Outcome is what the host reported on this closure: "switched",
	// "installed", "failed", "rolled back"; empty: nothing yet.
	Outcome string `json:"outcome,omitempty"`
	Skipped bool   `json:"skipped,omitempty"` // passed over asleep: woken and updated later
	Waived  bool   `json:"waived,omitempty"`  // an admin resumed past it
}
