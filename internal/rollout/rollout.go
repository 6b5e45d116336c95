package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Version is the shape of the JSON a Rollout marshals to. Load refuses others.
const Version = 1

// Kind says why a rollout exists.
type Kind string

// The kinds of rollout.
const (
	KindPush     Kind = "push"     // a new deploy-branch commit
	KindRollback Kind = "rollback" // every host back to its closure at an earlier commit
)

// Status is where a rollout stands.
type Status string

// The statuses. Progressing and Halted are active (Resume, Abort and Supersede
// apply); the others are final.
const (
	StatusProgressing Status = "progressing"
	StatusHalted      Status = "halted"
	StatusComplete    Status = "complete"
	StatusAborted     Status = "aborted"
	StatusSuperseded  Status = "superseded"
)

// Active reports whether a rollout in status s can still change.
func (s Status) Active() bool { return s == StatusProgressing || s == StatusHalted }

// Outcome is what a host reported about the closure it was offered.
type Outcome string

// The outcomes the builder derives from an agent's report.
const (
	// OutcomeSwitched: the host runs the closure and its health checks passed
	// (an agent that finds itself already on it reports the same).
	OutcomeSwitched Outcome = "switched"
	// OutcomeInstalled: outside its maintenance window, the host installed the
	// closure for its next boot.
	OutcomeInstalled Outcome = "installed"
	// OutcomeFailed: the host could not fetch or activate the closure.
	OutcomeFailed Outcome = "failed"
	// OutcomeRolledBack: the host switched, a health check failed, and it went
	// back to its previous system.
	OutcomeRolledBack Outcome = "rolled back"
)

// Liveness is what the builder knows of a host being up.
type Liveness string

// The liveness values; the zero value counts as unknown.
const (
	LivenessAwake   Liveness = "awake"
	LivenessAsleep  Liveness = "asleep"
	LivenessUnknown Liveness = "unknown"
)

// AsleepPolicy says whether an asleep host holds its wave.
type AsleepPolicy string

// The asleep policies (a host's deploy.asleep in the fleet flake).
const (
	AsleepWait AsleepPolicy = "wait" // hold the wave until the host reports or the gate times out
	AsleepSkip AsleepPolicy = "skip" // go on; the host is listed to be woken and updated later
)

// HaltReason says why a rollout halted.
type HaltReason string

// The halt reasons.
const (
	HaltFailed     HaltReason = "failed"
	HaltRolledBack HaltReason = "rolled back"
	HaltTimeout    HaltReason = "timeout"
)

// Errors the admin actions and Load return; callers branch on them with errors.Is.
var (
	ErrNotHalted = errors.New("rollout is not halted")
	ErrEnded     = errors.New("rollout has ended")
	ErrVersion   = errors.New("unknown rollout state version")
	ErrInvalid   = errors.New("invalid rollout")
)

// Target is one host of a rollout: the closure it should run and its wave.
type Target struct {
	Host      string       `json:"host"`
	Wave      int          `json:"wave"`
	StorePath string       `json:"storePath"`
	Asleep    AsleepPolicy `json:"asleep"`
}

// Config holds the builder's settings for every rollout.
type Config struct {
	// GateTimeout is how long a wave may take, from its offer until every host
	// of it passed; then the rollout halts. Zero or less means no timeout.
	GateTimeout time.Duration
	// InstalledHolds makes a host that only installed the closure for its next
	// boot hold its wave until it switched; by default installing passes.
	InstalledHolds bool
}

// Report is a host's latest word on a closure, as the builder received it.
type Report struct {
	Host string
	// Closure is the store path the report is about: the one the host switched
	// to or installed, or the one it tried and failed on (the builder finds it
	// from the manifest's seq). A report about another closure does not count.
	Closure string
	Outcome Outcome
	At      time.Time // when the builder received it
	Reason  string
}

// Input is what the builder knows at one step.
type Input struct {
	Now      time.Time
	Reports  map[string]Report   // by host: its latest report
	Liveness map[string]Liveness // by host; missing means unknown
}

// Halt records why a rollout halted.
type Halt struct {
	Host   string     `json:"host"`
	Wave   int        `json:"wave"`
	Reason HaltReason `json:"reason"`
	Detail string     `json:"detail,omitempty"`
	At     time.Time  `json:"at"`
}

// HostState is a host's progress in a rollout.
type HostState struct {
	OfferedAt  *time.Time `json:"offeredAt,omitempty"`  // when its manifest was offered
	Outcome    Outcome    `json:"outcome,omitempty"`    // its last counted report
	ReportedAt *time.Time `json:"reportedAt,omitempty"` // when that report came
	Skipped    bool       `json:"skipped,omitempty"`    // passed over asleep: to wake and update later
	Waived     bool       `json:"waived,omitempty"`     // an admin resumed past it
}

// Rollout is the state of one rollout, stored as JSON.
type Rollout struct {
	Version      int                   `json:"version"`
	Commit       string                `json:"commit"`
	Kind         Kind                  `json:"kind"`
	Targets      []Target              `json:"targets"` // sorted by wave, then host
	Hosts        map[string]*HostState `json:"hosts"`
	Status       Status                `json:"status"`
	Wave         int                   `json:"wave"` // the wave being offered
	WaveStarted  time.Time             `json:"waveStarted"`
	Started      time.Time             `json:"started"`
	Halt         *Halt                 `json:"halt,omitempty"`
	Ended        *time.Time            `json:"ended,omitempty"`
	EndReason    string                `json:"endReason,omitempty"`
	SupersededBy string                `json:"supersededBy,omitempty"`
}

// Decision is what one step asks of the builder.
type Decision struct {
	// Offer lists the hosts whose manifests to publish now (sorted): the
	// hosts of a wave that just opened. Each is offered once per rollout.
	Offer []string
	// Wake lists the hosts passed over asleep that have not reported yet: the
	// builder wakes them (or waits for them) to update them later.
	Wake   []string
	Status Status
	Wave   int
	Halt   *Halt
}

// New starts a rollout of commit to targets at now. Nothing is offered until
// the first Advance. A rollback (KindRollback) is a rollout like any other,
// with each host's closure at the earlier commit: it goes through the same
// waves.
func New(commit string, kind Kind, targets []Target, now time.Time) (*Rollout, error) {
	if commit == "" {
		return nil, fmt.Errorf("new rollout: %w: no commit", ErrInvalid)
	}
	if kind != KindPush && kind != KindRollback {
		return nil, fmt.Errorf("new rollout of %s: %w: kind %q", commit, ErrInvalid, kind)
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("new rollout of %s: %w: no hosts", commit, ErrInvalid)
	}
	ts := append([]Target(nil), targets...)
	hosts := make(map[string]*HostState, len(ts))
	for i, t := range ts {
		switch {
		case t.Host == "":
			return nil, fmt.Errorf("new rollout of %s: %w: a host without a name", commit, ErrInvalid)
		case hosts[t.Host] != nil:
			return nil, fmt.Errorf("new rollout of %s: %w: host %s twice", commit, ErrInvalid, t.Host)
		case t.Wave < 0:
			return nil, fmt.Errorf("new rollout of %s: %w: host %s has wave %d", commit, ErrInvalid, t.Host, t.Wave)
		case t.StorePath == "":
			return nil, fmt.Errorf("new rollout of %s: %w: host %s has no closure", commit, ErrInvalid, t.Host)
		}
		switch t.Asleep {
		case "":
			ts[i].Asleep = AsleepWait
		case AsleepWait, AsleepSkip:
		default:
			return nil, fmt.Errorf("new rollout of %s: %w: host %s has asleep policy %q", commit, ErrInvalid, t.Host, t.Asleep)
		}
		hosts[t.Host] = &HostState{}
	}
	sort.Slice(ts, func(i, j int) bool {
		if ts[i].Wave != ts[j].Wave {
			return ts[i].Wave < ts[j].Wave
		}
		return ts[i].Host < ts[j].Host
	})
	return &Rollout{
		Version:     Version,
		Commit:      commit,
		Kind:        kind,
		Targets:     ts,
		Hosts:       hosts,
		Status:      StatusProgressing,
		Wave:        ts[0].Wave,
		WaveStarted: now,
		Started:     now,
	}, nil
}

// Load reads a stored rollout, refusing a shape it does not know.
func Load(data []byte) (*Rollout, error) {
	var probe struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("load rollout: %w", err)
	}
	if probe.Version != Version {
		return nil, fmt.Errorf("load rollout: %w: %d (this build knows %d)", ErrVersion, probe.Version, Version)
	}
	var r Rollout
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("load rollout: %w", err)
	}
	if r.Hosts == nil {
		r.Hosts = map[string]*HostState{}
	}
	for _, t := range r.Targets {
		if r.Hosts[t.Host] == nil {
			r.Hosts[t.Host] = &HostState{}
		}
	}
	return &r, nil
}

// Target returns host's target, if the host is part of the rollout.
func (r *Rollout) Target(host string) (Target, bool) {
	for _, t := range r.Targets {
		if t.Host == host {
			return t, true
		}
	}
	return Target{}, false
}

// Offered reports whether host's manifest has been offered; a host not yet
// offered keeps its current closure.
func (r *Rollout) Offered(host string) bool {
	h := r.Hosts[host]
	return h != nil && h.OfferedAt != nil
}

// Advance takes the reports and liveness in in and moves the rollout on as far
// as they allow: it records counted reports, halts on a failure or a timeout,
// passes asleep hosts with policy "skip", and opens the next wave (or
// completes) once the current one passed. It returns what the builder should
// do now. A halted or complete rollout only records reports; an aborted or
// superseded one changes no more.
func (r *Rollout) Advance(cfg Config, in Input) Decision {
	var offer []string
	if r.Status == StatusProgressing {
		offer = r.offerWave(r.Wave, in.Now)
	}
	if r.Status == StatusProgressing || r.Status == StatusHalted || r.Status == StatusComplete {
		// A halted or complete rollout still learns which hosts got there
		// (a host passed over asleep reports once it woke).
		r.record(in)
	}
	if r.Status == StatusProgressing {
		for r.Status == StatusProgressing {
			if r.haltOnFailure(in.Now) {
				break
			}
			pending := r.pending(cfg, r.Wave, in)
			if len(pending) > 0 {
				if cfg.GateTimeout > 0 && in.Now.Sub(r.WaveStarted) >= cfg.GateTimeout {
					r.halt(Halt{
						Host:   pending[0],
						Wave:   r.Wave,
						Reason: HaltTimeout,
						Detail: fmt.Sprintf("wave %d not done after %s; waiting for %v", r.Wave, cfg.GateTimeout, pending),
						At:     in.Now,
					})
				}
				break
			}
			next, ok := r.nextWave(r.Wave)
			if !ok {
				r.end(StatusComplete, "", in.Now)
				break
			}
			r.Wave = next
			r.WaveStarted = in.Now
			offer = append(offer, r.offerWave(next, in.Now)...)
		}
	}
	return r.decision(offer)
}

// Resume continues a halted rollout with the next wave: the admin accepts the
// halted wave as it is (its failed or late hosts are waived). Resuming the
// last wave completes the rollout. It returns ErrNotHalted unless halted.
func (r *Rollout) Resume(now time.Time) (Decision, error) {
	if r.Status != StatusHalted {
		return r.decision(nil), fmt.Errorf("resume rollout of %s (%s): %w", r.Commit, r.Status, ErrNotHalted)
	}
	for _, t := range r.Targets {
		if t.Wave <= r.Wave && !r.passedOrSkipped(t.Host) {
			r.Hosts[t.Host].Waived = true
		}
	}
	r.Halt = nil
	r.Status = StatusProgressing
	next, ok := r.nextWave(r.Wave)
	if !ok {
		r.end(StatusComplete, "resumed past the last wave", now)
		return r.decision(nil), nil
	}
	r.Wave = next
	r.WaveStarted = now
	return r.decision(r.offerWave(next, now)), nil
}

// Abort ends an active rollout: no host gets anything more from it; those
// offered keep what they have. It returns ErrEnded on an ended rollout.
func (r *Rollout) Abort(now time.Time, reason string) error {
	if !r.Status.Active() {
		return fmt.Errorf("abort rollout of %s (%s): %w", r.Commit, r.Status, ErrEnded)
	}
	r.end(StatusAborted, reason, now)
	return nil
}

// Supersede ends an active rollout because a newer one (of commit by) starts.
// It returns ErrEnded on an ended rollout, which the builder may ignore.
func (r *Rollout) Supersede(by string, now time.Time) error {
	if !r.Status.Active() {
		return fmt.Errorf("supersede rollout of %s (%s): %w", r.Commit, r.Status, ErrEnded)
	}
	r.SupersededBy = by
	r.end(StatusSuperseded, "superseded by "+by, now)
	return nil
}

// Start begins a rollout of commit and supersedes current (the rollout
// running so far, or nil), the way a newer deploy-branch commit or a
// rollback replaces the one before.
func Start(current *Rollout, commit string, kind Kind, targets []Target, now time.Time) (*Rollout, error) {
	next, err := New(commit, kind, targets, now)
	if err != nil {
		return nil, err
	}
	if current != nil && current.Status.Active() {
		_ = current.Supersede(commit, now) // active: cannot fail
	}
	return next, nil
}

// offerWave marks the hosts of wave not yet offered as offered at now and
// returns them, sorted.
func (r *Rollout) offerWave(wave int, now time.Time) []string {
	var out []string
	for _, t := range r.Targets {
		h := r.Hosts[t.Host]
		if t.Wave == wave && h.OfferedAt == nil {
			at := now
			h.OfferedAt = &at
			out = append(out, t.Host)
		}
	}
	return out
}

// record keeps each offered host's latest report about its target closure,
// received after the offer. Reports about another closure do not count.
func (r *Rollout) record(in Input) {
	for _, t := range r.Targets {
		h := r.Hosts[t.Host]
		rep, ok := in.Reports[t.Host]
		if h.OfferedAt == nil || !ok || rep.Closure != t.StorePath || rep.At.Before(*h.OfferedAt) {
			continue
		}
		if h.ReportedAt != nil && !rep.At.After(*h.ReportedAt) {
			continue
		}
		at := rep.At
		h.Outcome, h.ReportedAt = rep.Outcome, &at
		if rep.Outcome == OutcomeSwitched || rep.Outcome == OutcomeInstalled {
			h.Skipped = false
		}
	}
}

// haltOnFailure halts at the first offered, not waived host whose counted
// report is a failure or a rollback.
func (r *Rollout) haltOnFailure(now time.Time) bool {
	for _, t := range r.Targets {
		h := r.Hosts[t.Host]
		if h.OfferedAt == nil || h.Waived {
			continue
		}
		var reason HaltReason
		switch h.Outcome {
		case OutcomeFailed:
			reason = HaltFailed
		case OutcomeRolledBack:
			reason = HaltRolledBack
		default:
			continue
		}
		r.halt(Halt{Host: t.Host, Wave: t.Wave, Reason: reason, Detail: fmt.Sprintf("%s %s on %s", t.Host, reason, t.StorePath), At: now})
		return true
	}
	return false
}

// pending lists the hosts of wave that hold it: not passed, not waived, not
// passed over asleep. An asleep host with policy "skip" is marked skipped.
func (r *Rollout) pending(cfg Config, wave int, in Input) []string {
	var out []string
	for _, t := range r.Targets {
		if t.Wave != wave {
			continue
		}
		h := r.Hosts[t.Host]
		if h.Waived || h.Skipped || passes(cfg, h.Outcome) {
			continue
		}
		if in.Liveness[t.Host] == LivenessAsleep && t.Asleep == AsleepSkip {
			h.Skipped = true
			continue
		}
		out = append(out, t.Host)
	}
	return out
}

func passes(cfg Config, o Outcome) bool {
	return o == OutcomeSwitched || (o == OutcomeInstalled && !cfg.InstalledHolds)
}

func (r *Rollout) passedOrSkipped(host string) bool {
	h := r.Hosts[host]
	return h.Skipped || h.Outcome == OutcomeSwitched || h.Outcome == OutcomeInstalled
}

// nextWave returns the lowest wave above wave.
func (r *Rollout) nextWave(wave int) (int, bool) {
	for _, t := range r.Targets {
		if t.Wave > wave {
			return t.Wave, true
		}
	}
	return 0, false
}

func (r *Rollout) halt(h Halt) {
	r.Status = StatusHalted
	r.Halt = &h
}

func (r *Rollout) end(s Status, reason string, now time.Time) {
	r.Status = s
	r.EndReason = reason
	at := now
	r.Ended = &at
}

func (r *Rollout) decision(offer []string) Decision {
	d := Decision{Offer: offer, Status: r.Status, Wave: r.Wave}
	if r.Halt != nil {
		h := *r.Halt
		d.Halt = &h
	}
	sort.Strings(d.Offer)
	for _, t := range r.Targets {
		if h := r.Hosts[t.Host]; h.Skipped {
			d.Wake = append(d.Wake, t.Host)
		}
	}
	sort.Strings(d.Wake)
	return d
}
