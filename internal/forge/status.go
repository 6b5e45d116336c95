package forge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/homelab-farm/farm/internal/textcut"
)

// State is a commit status state. All forges know these four.
type State string

// Commit status states.
const (
	StatePending State = "pending"
	StateSuccess State = "success"
	StateFailure State = "failure"
	StateError   State = "error"
)

// Status is one commit status.
type Status struct {
	State       State
	Context     string // e.g. "farm/eval", "farm/host/malphas"
	Description string // short; forges cut it at 140 characters
	TargetURL   string // where the details are; "" for none
}

// StatusClient sets commit statuses on one forge. Implementations retry
// transient failures (5xx, 429) themselves and are safe for concurrent use.
type StatusClient interface {
	// SetStatus sets st on commit of the repository fullName ("owner/name").
	SetStatus(ctx context.Context, fullName, commit string, st Status) error
}

// StatusTarget is one remote a commit arrived from, with the client that
// reaches its forge.
type StatusTarget struct {
	Client   StatusClient
	FullName string
	Name     string // for errors and logs, e.g. the remote's URL
}

// ForRepo returns a StatusClient that sets statuses on the repository
// fullName only, whatever repository its callers name: the builder binds
// each configured remote's client to that remote's repository, so that no
// name from a payload can send statuses elsewhere.
func ForRepo(c StatusClient, fullName string) StatusClient { return repoClient{c, fullName} }

type repoClient struct {
	c        StatusClient
	fullName string
}

func (r repoClient) SetStatus(ctx context.Context, _ string, commit string, st Status) error {
	return r.c.SetStatus(ctx, r.fullName, commit, st)
}

// HostResult is the outcome of one host of an evaluation.
type HostResult struct {
	Host        string
	State       State
	Description string
	TargetURL   string
}

// Log attribute keys.
const (
	logCommit = "commit"
	logFailed = "failed"
)

// MaxDescription is the longest description forges keep.
const MaxDescription = 140

// PlanStatuses returns the statuses for one evaluation, in the order they
// are to be sent: one per host ("<prefix>/host/<name>"), then the overall
// one ("<prefix>/eval"), so that a forge's combined status is never
// success while a host status is still to come. With more
// hosts than limit, only failed hosts (failure or error) get a status, at
// most limit of them, and the overall description says so: a large fleet
// must not run into the forges' rate limits.
func PlanStatuses(prefix string, overall Status, hosts []HostResult, limit int) []Status {
	overall.Context = prefix + "/eval"
	sel := hosts
	if len(hosts) > limit {
		sel = nil
		for _, h := range hosts {
			if h.State == StateFailure || h.State == StateError {
				sel = append(sel, h)
			}
		}
		failed := len(sel)
		if len(sel) > limit {
			sel = sel[:limit]
		}
		note := fmt.Sprintf(" (%d hosts, %d failed; per-host statuses only for failures", len(hosts), failed)
		if failed > limit {
			note += fmt.Sprintf(", first %d shown", limit)
		}
		overall.Description += note + ")"
	}
	out := make([]Status, 0, 1+len(sel))
	for _, h := range sel {
		out = append(out, Status{
			State:       h.State,
			Context:     prefix + "/host/" + h.Host,
			Description: truncate(h.Description),
			TargetURL:   h.TargetURL,
		})
	}
	overall.Description = truncate(overall.Description)
	return append(out, overall)
}

func truncate(s string) string {
	return textcut.Bytes(strings.TrimSpace(s), MaxDescription)
}

// Report sends every status to every target. It keeps going past a
// failing target (one forge being down must not cost the others their
// statuses) and returns the failures joined.
func Report(ctx context.Context, log *slog.Logger, targets []StatusTarget, commit string, statuses []Status) error {
	var errs []error
	for _, t := range targets {
		for _, st := range statuses {
			if err := t.Client.SetStatus(ctx, t.FullName, commit, st); err != nil {
				errs = append(errs, fmt.Errorf("status %s on %s: %w", st.Context, t.Name, err))
				if ctx.Err() != nil {
					return errors.Join(errs...)
				}
				break // the next statuses would fail the same way
			}
		}
	}
	if len(errs) > 0 && log != nil {
		log.Warn("commit statuses not all sent", logCommit, commit, logFailed, len(errs))
	}
	return errors.Join(errs...)
}

// ValidState reports whether s is one of the four states.
func ValidState(s State) bool {
	return slices.Contains([]State{StatePending, StateSuccess, StateFailure, StateError}, s)
}

// APIError is a forge API's refusal.
type APIError struct {
	Status int
	Body   string // the start of the response body
}

func (e *APIError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("forge API: HTTP %d", e.Status)
	}
	return fmt.Sprintf("forge API: HTTP %d: %s", e.Status, e.Body)
}
