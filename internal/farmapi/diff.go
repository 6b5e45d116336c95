package farmapi

// Diff bases (ClosureDiff.Against): what a target's closure is compared
// with.
const (
	// AgainstCurrent: the closure the host runs, from its last report.
	AgainstCurrent = "current"
	// AgainstPrevious: the host's closure in the previous evaluation of the
	// same branch; for a pull request, in the deploy branch's latest
	// evaluation (what merging would change).
	AgainstPrevious = "previous"
)

// TargetDiff answers GET /api/targets/{id}/diff: what a host's closure in
// one evaluation changes against the closure the host runs (Current) and
// against the previous build (Previous). A diff not computed (the target
// has no closure, or is still building) is null.
type TargetDiff struct {
	Target   int64        `json:"target"`
	Eval     int64        `json:"eval"`
	Host     string       `json:"host"`
	OutPath  string       `json:"out_path,omitempty"`
	State    string       `json:"state"`
	Current  *ClosureDiff `json:"current"`
	Previous *ClosureDiff `json:"previous"`
}

// ClosureDiff is how a target's closure differs from one base closure. Its
// counts, sizes, download and packages are those of closurediff.Diff, with
// the same JSON names.
type ClosureDiff struct {
	Against string `json:"against"` // AgainstCurrent or AgainstPrevious
	// BasePath is the closure compared with; "" means nothing (the host
	// never reported, or was never built before): every path is new.
	BasePath string `json:"base_path"`
	// BaseTarget, BaseEval and BaseCommit name the build of BasePath, when
	// the farm built it (0 and "" for a closure only a host reported).
	BaseTarget int64  `json:"base_target,omitempty"`
	BaseEval   int64  `json:"base_eval,omitempty"`
	BaseBranch string `json:"base_branch,omitempty"`
	BaseCommit string `json:"base_commit,omitempty"`
	// Error says why there is no diff; every field below is empty then.
	Error string `json:"error,omitempty"`
	// Summary is the short form ("+2 ~14 -1 · 38 MiB"), Headline the
	// changes that matter most ("linux 6.12.9 → 6.12.10, +2 more").
	Summary  string `json:"summary,omitempty"`
	Headline string `json:"headline,omitempty"`

	Packages    []PackageChange `json:"packages"`
	Added       int             `json:"added"`
	Removed     int             `json:"removed"`
	Changed     int             `json:"changed"`
	Rebuilt     int             `json:"rebuilt"`
	PathsBefore int             `json:"paths_before"`
	PathsAfter  int             `json:"paths_after"`
	SizeBefore  uint64          `json:"size_before"` // NAR bytes
	SizeAfter   uint64          `json:"size_after"`
	SizeDelta   int64           `json:"size_delta"`
	Download    Download        `json:"download"`
}

// PackageChange is one package that differs: Kind is "added", "removed",
// "changed" (version) or "rebuilt" (same versions, other paths); From and
// To are the versions only the base, and only the new closure, has.
type PackageChange struct {
	Package    string   `json:"package"`
	Kind       string   `json:"kind"`
	From       []string `json:"from"`
	To         []string `json:"to"`
	Direction  string   `json:"direction,omitempty"` // "upgrade", "downgrade"
	SizeBefore uint64   `json:"size_before"`
	SizeAfter  uint64   `json:"size_after"`
	SizeDelta  int64    `json:"size_delta"`
}

// Download is what a host holding the base closure fetches to switch: the
// paths it lacks and their compressed size in the farm's cache (narinfo
// FileSize). Unknown counts paths whose size the cache does not tell;
// Bytes leaves them out.
type Download struct {
	Paths   int    `json:"paths"`
	Bytes   uint64 `json:"bytes"`
	Unknown int    `json:"unknown,omitempty"`
}

// DiffBrief is a closure diff in brief, as events carry it.
type DiffBrief struct {
	Against  string `json:"against"`
	Target   int64  `json:"target"` // the target whose diff it is
	Summary  string `json:"summary"`
	Headline string `json:"headline"`
}

// LastGood is, on a TargetFailed event, the host's latest earlier build
// of the same branch that succeeded, and what that build changed against
// the one before it (Change: a headline, "" when not known).
type LastGood struct {
	Target int64  `json:"target"`
	Commit string `json:"commit"`
	Change string `json:"change,omitempty"`
}
