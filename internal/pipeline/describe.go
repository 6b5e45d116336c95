package pipeline

import (
	"fmt"
	"strings"

	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/state"
)

// Counts are the outcomes of an evaluation's hosts, as a commit status
// describes them.
type Counts struct {
	Built   int // built and pushed by this evaluation
	Cached  int // already in the cache: nothing to build
	Skipped int // not built (no builder for the system, or superseded)
	Failed  int // evaluation, build or push failed
	Pending int // not finished yet (pending or building)
}

// CountTargets counts the hosts of an evaluation by state.
func CountTargets(ts []state.Target) Counts {
	var c Counts
	for _, t := range ts {
		switch t.State {
		case state.TargetBuilt:
			c.Built++
		case state.TargetCached:
			c.Cached++
		case state.TargetSkipped:
			c.Skipped++
		case state.TargetFailed:
			c.Failed++
		default:
			c.Pending++
		}
	}
	return c
}

// String reads "3 built, 1 cached, 1 skipped, 0 failed", with ", 2 pending"
// after it while some hosts are unfinished: every host is counted once,
// and a host that was not built is never counted as built.
func (c Counts) String() string {
	s := fmt.Sprintf("%d built, %d cached, %d skipped, %d failed", c.Built, c.Cached, c.Skipped, c.Failed)
	if c.Pending > 0 {
		s += fmt.Sprintf(", %d pending", c.Pending)
	}
	return s
}

// evalFailedReason starts the reason of a host whose evaluation failed;
// Nix's error follows.
const evalFailedReason = "evaluation failed: "

// hostDescription is a host's commit status description: its state and
// what its closure changes (diffLine, see Diff.StatusLine) or its reason,
// or for a failed evaluation Nix's own message and position (the full
// reason stays on the target page).
func hostDescription(t state.Target, diffLine string) string {
	if nixErr, ok := strings.CutPrefix(t.Reason, evalFailedReason); ok && t.State == state.TargetFailed {
		return nix.ErrorMessage(nixErr, forge.MaxDescription)
	}
	if diffLine != "" {
		return t.State + ": " + diffLine
	}
	if t.Reason != "" {
		return t.State + ": " + t.Reason
	}
	return t.State
}
