package dashboard

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/state"
)

// Diffs reads the closure diffs the pipeline recorded per target
// (*state.Store): a target's diffs, and the short summaries of many
// against one base (farmapi.AgainstCurrent or AgainstPrevious; a target
// without a computed diff has no entry). Methods are called concurrently.
type Diffs interface {
	TargetDiffs(ctx context.Context, targetID int64) ([]state.TargetDiff, error)
	DiffSummaries(ctx context.Context, targets []int64, against string) (map[int64]string, error)
}

// NoDiffs is Diffs with nothing recorded.
type NoDiffs struct{}

var _ Diffs = NoDiffs{}

// TargetDiffs returns none.
func (NoDiffs) TargetDiffs(context.Context, int64) ([]state.TargetDiff, error) { return nil, nil }

// DiffSummaries returns none.
func (NoDiffs) DiffSummaries(context.Context, []int64, string) (map[int64]string, error) {
	return nil, nil
}

// diffReader joins the state's targets with the recorded diffs
// (pipeline.DiffReader).
type diffReader struct {
	State
	Diffs
}

// TargetDiff returns what a target's closure changes (pipeline.TargetDiff)
// from st and diffs (nil: none recorded); an unknown target is an error
// wrapping state.ErrNotFound.
func TargetDiff(ctx context.Context, st State, diffs Diffs, targetID int64) (farmapi.TargetDiff, error) {
	if diffs == nil {
		diffs = NoDiffs{}
	}
	return pipeline.TargetDiff(ctx, diffReader{st, diffs}, targetID)
}

func (d *Dashboard) diffs() Diffs {
	if d.Diffs == nil {
		return NoDiffs{}
	}
	return d.Diffs
}

// diffView is one closure diff as the target page shows it.
type diffView struct {
	*farmapi.ClosureDiff
	Title string // what the closure is compared with
	// BaseTargetURL links the base's build, "" when the farm did not build
	// it.
	BaseTargetURL string
	// The packages by kind: version changes first, as the table lists them.
	ChangedPkgs, AddedPkgs, RemovedPkgs, RebuiltPkgs []farmapi.PackageChange
}

// diffViews are a target's diffs for its page: against what the host runs,
// then against the previous build (or, for a pull request, the deploy
// branch's head).
func (d *Dashboard) diffViews(r *http.Request, t state.Target, e state.Evaluation) ([]diffView, error) {
	td, err := TargetDiff(r.Context(), d.State, d.diffs(), t.ID)
	if errors.Is(err, state.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []diffView
	for _, cd := range []*farmapi.ClosureDiff{td.Current, td.Previous} {
		if cd == nil {
			continue
		}
		v := diffView{ClosureDiff: cd, Title: diffTitle(cd, e)}
		if cd.BaseTarget != 0 {
			v.BaseTargetURL = "/targets/" + strconv.FormatInt(cd.BaseTarget, 10)
		}
		for _, p := range cd.Packages {
			switch p.Kind {
			case "added":
				v.AddedPkgs = append(v.AddedPkgs, p)
			case "removed":
				v.RemovedPkgs = append(v.RemovedPkgs, p)
			case "changed":
				v.ChangedPkgs = append(v.ChangedPkgs, p)
			default:
				v.RebuiltPkgs = append(v.RebuiltPkgs, p)
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// diffTitle names what cd compares the target with.
func diffTitle(cd *farmapi.ClosureDiff, e state.Evaluation) string {
	if cd.Against == farmapi.AgainstCurrent {
		if cd.BasePath == "" && cd.Error == "" {
			return "Against what the host runs (it never reported: everything is new)"
		}
		return "Against what the host runs"
	}
	switch {
	case cd.BaseBranch != "" && e.Branch != "" && cd.BaseBranch != e.Branch:
		return "Against the head of " + cd.BaseBranch + " (what merging changes)"
	case cd.BasePath == "" && cd.Error == "":
		return "Against the previous build (none: everything is new)"
	}
	return "Against the previous build"
}

// cellSummaries are the diff summaries of the matrix's targets.
func (d *Dashboard) cellSummaries(ctx context.Context, rows []matrixRow) (map[int64]string, error) {
	var ids []int64
	for _, row := range rows {
		for _, c := range row.Cells {
			if c != nil {
				ids = append(ids, c.ID)
			}
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	return pipeline.CellSummaries(ctx, d.diffs(), ids)
}

// versions lists a package's versions on one side of a diff, "—" for none
// (a version-less package such as a configuration file).
func versions(vs []string) string {
	if len(vs) == 0 {
		return "—"
	}
	return strings.Join(vs, ", ")
}
