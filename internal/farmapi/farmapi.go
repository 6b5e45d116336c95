package farmapi

import (
	"encoding/json"
	"time"
)

// EventType names an entry of the event log (/api/events, "event:" line).
type EventType string

// The event types, in the order a push produces them.
const (
	EvalQueued     EventType = "evaluation.queued"   // EvalQueuedData: a push was queued (webhook or trigger)
	EvalStarted    EventType = "evaluation.started"  // EvalData
	EvalFinished   EventType = "evaluation.finished" // EvalData with State, Failed and Hosts
	TargetBuilding EventType = "target.building"     // TargetData
	TargetBuilt    EventType = "target.built"        // TargetData
	TargetCached   EventType = "target.cached"       // TargetData
	TargetFailed   EventType = "target.failed"       // TargetData
	TargetSkipped  EventType = "target.skipped"      // TargetData
	HostDesired    EventType = "host.desired"        // HostDesiredData: a new signed manifest for a host
	HostReport     EventType = "host.report"         // HostReportData: an agent reported
	RemoteSynced   EventType = "remote.synced"       // RemoteSyncedData: the deploy branch fast-forwarded on another remote

	CacheCollected        EventType = "cache.collected"         // CollectionData: a scheduled collection of the binary cache ended
	CacheCollectionFailed EventType = "cache.collection_failed" // CollectionData with Error: it failed
)

// EvalQueuedData is the payload of EvalQueued.
type EvalQueuedData struct {
	Job        int64   `json:"job"`
	Repo       string  `json:"repo"`
	Branch     string  `json:"branch"`
	Commit     string  `json:"commit"`
	Forge      string  `json:"forge,omitempty"`
	Superseded []int64 `json:"superseded,omitempty"`
	Late       bool    `json:"late,omitempty"`
}

// EvalData is the payload of EvalStarted and EvalFinished.
type EvalData struct {
	Eval    int64  `json:"eval"`
	Repo    string `json:"repo"`
	Branch  string `json:"branch"`
	Commit  string `json:"commit"`
	Resumed bool   `json:"resumed"` // an earlier attempt of the job started it
	// Set on EvalFinished only (see MarshalJSON).
	State  string `json:"state,omitempty"`
	Failed int    `json:"failed,omitempty"`
	Hosts  int    `json:"hosts,omitempty"`
	// Error is Nix's message when the whole flake failed to evaluate.
	Error string `json:"error,omitempty"`
}

// MarshalJSON leaves State, Failed and Hosts out of EvalStarted (State
// empty) and writes all three on EvalFinished, zeros included: a finished
// evaluation with no failures says "failed":0.
func (d EvalData) MarshalJSON() ([]byte, error) {
	type fields EvalData // EvalData without this method
	if d.State == "" {
		return json.Marshal(fields(d))
	}
	return json.Marshal(struct {
		fields
		Failed int `json:"failed"` // shallower than fields.Failed: this one is written
		Hosts  int `json:"hosts"`
	}{fields(d), d.Failed, d.Hosts})
}

// TargetData is the payload of every Target* event.
type TargetData struct {
	Eval    int64  `json:"eval"`
	Target  int64  `json:"target"`
	Host    string `json:"host"`
	System  string `json:"system"`
	OutPath string `json:"out_path"` // empty when evaluation failed
	State   string `json:"state"`
	Reason  string `json:"reason"`
	// LastGood is set on TargetFailed when the host has an earlier good
	// build of the same branch.
	LastGood *LastGood `json:"last_good,omitempty"`
}

// HostDesiredData is the payload of HostDesired.
type HostDesiredData struct {
	Host      string `json:"host"`
	StorePath string `json:"store_path"`
	Commit    string `json:"commit"`
	Seq       uint64 `json:"seq"`
	// Diff is what the new closure changes on the host (against what it
	// runs), when the diff was computed.
	Diff *DiffBrief `json:"diff,omitempty"`
}

// HostReportData is the payload of HostReport: the agent's Report and the
// host it came from.
type HostReportData struct {
	Host string `json:"host"`
	Report
}

// RemoteSyncedData is the payload of RemoteSynced. Remote never carries
// credentials.
type RemoteSyncedData struct {
	Repo   string `json:"repo"`
	Remote string `json:"remote"`
	Branch string `json:"branch"`
	Commit string `json:"commit"`
}

// CollectionData is the payload of CacheCollected and
// CacheCollectionFailed: one run of the binary cache's garbage collection.
type CollectionData struct {
	Collection int64     `json:"collection"` // the run's id in the builder's state
	Instance   string    `json:"instance,omitempty"`
	Started    time.Time `json:"started"`
	DurationMS int64     `json:"duration_ms"`
	// Freed counts every object that went (narinfos, NARs, logs).
	FreedObjects int64 `json:"freed_objects"`
	FreedBytes   int64 `json:"freed_bytes"`
	KeptPaths    int64 `json:"kept_paths"`
	// Cache is what the cache holds afterwards (narinfos and NARs).
	CacheObjects int64  `json:"cache_objects"`
	CacheBytes   int64  `json:"cache_bytes"`
	Error        string `json:"error,omitempty"`
}

// Result is what an agent's check ended in.
type Result string

// The results an agent reports; the builder refuses any other.
const (
	ResultSwitched   Result = "switched"
	ResultUpToDate   Result = "up-to-date"
	ResultRolledBack Result = "rolled back"
	ResultFailed     Result = "failed"
	// ResultInstalled: outside its maintenance window (or under an active
	// session) the host installed the closure for its next boot.
	ResultInstalled Result = "installed for boot"
	// ResultWaiting: outside its window, the host waits to switch; Current
	// is still the old system.
	ResultWaiting Result = "waiting for window"
)

// Valid reports whether r is one of the results above.
func (r Result) Valid() bool {
	switch r {
	case ResultSwitched, ResultUpToDate, ResultRolledBack, ResultFailed, ResultInstalled, ResultWaiting:
		return true
	}
	return false
}

// Report is the body of POST /api/hosts/{host}/report, sent by the agent
// after every check.
type Report struct {
	Current string `json:"current"` // the store path the host runs now
	Result  Result `json:"result"`
	Reason  string `json:"reason,omitempty"`
	Seq     uint64 `json:"seq,omitempty"` // the manifest applied, if any
}

// EnqueueResponse answers a webhook or a trigger (POST /api/evaluations)
// that queued a push: Job is the queue job; the evaluation id exists once a
// worker starts it (EvalStarted carries both).
type EnqueueResponse struct {
	Job        int64   `json:"job"`
	Commit     string  `json:"commit,omitempty"`
	Created    bool    `json:"created"`
	Replay     bool    `json:"replay,omitempty"`
	Late       bool    `json:"late,omitempty"`
	Superseded []int64 `json:"superseded,omitempty"`
}

// SeqResponse answers GET /api/hosts/{host}/seq.
type SeqResponse struct {
	Seq uint64 `json:"seq"`
}
