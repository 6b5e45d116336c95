package httperr

import (
	"net/http"
	"strconv"
	"time"
)

// The catalogue: every message a client of the builder's HTTP surface can
// be told, by status. Handlers return these (with Wrap to log a cause) or
// the constructors below for messages that carry a value; no handler
// spells out a client message of its own.
var (
	// 400
	ErrBadJobID         = New(http.StatusBadRequest, "bad id")
	ErrBadEvaluationID  = New(http.StatusBadRequest, "bad evaluation id")
	ErrBadTargetID      = New(http.StatusBadRequest, "bad target id")
	ErrBadLimit         = New(http.StatusBadRequest, "limit: want 1 to 1000")
	ErrBadPageSize      = New(http.StatusBadRequest, "n: want a positive number")
	ErrBadLastEventID   = New(http.StatusBadRequest, "Last-Event-ID must be a number")
	ErrMalformedPayload = New(http.StatusBadRequest, "malformed payload")
	ErrUnreadableBody   = New(http.StatusBadRequest, "cannot read body")
	ErrMalformedReport  = New(http.StatusBadRequest, "malformed report")
	ErrIncompleteReport = New(http.StatusBadRequest, "a report needs a result and a store path")
	ErrMalformedRequest = New(http.StatusBadRequest, "malformed request")

	// 401
	ErrSignature  = New(http.StatusUnauthorized, "bad or missing signature")
	ErrAgentToken = New(http.StatusUnauthorized, "bad or missing agent token")
	ErrAdminToken = New(http.StatusUnauthorized, "bad or missing admin token")

	// 404
	ErrNotFound     = New(http.StatusNotFound, "not found")
	ErrNoJob        = New(http.StatusNotFound, "no such job")
	ErrNoEvaluation = New(http.StatusNotFound, "no such evaluation")
	ErrNoTarget     = New(http.StatusNotFound, "no such target")
	ErrNoHost       = New(http.StatusNotFound, "no such host")
	ErrNoManifest   = New(http.StatusNotFound, "no deploy manifest for this host")
	ErrNoBuildLog   = New(http.StatusNotFound, "no build log for this target")
	ErrNoRepository = New(http.StatusNotFound, "no such repository")
	ErrNoCache      = New(http.StatusNotFound, "no binary cache on this builder")

	// 413
	ErrBodyTooLarge = New(http.StatusRequestEntityTooLarge, "body too large")

	// 500
	ErrInternal = New(http.StatusInternalServerError, "internal error")

	// 502
	ErrBranchHead = New(http.StatusBadGateway, "cannot resolve the branch head")

	// 503
	ErrQueueUnavailable = New(http.StatusServiceUnavailable, "queue unavailable")
	// ErrManifestExpired is an outage, not a bound: logged as an error,
	// its handler sets Retry-After itself.
	ErrManifestExpired = New(http.StatusServiceUnavailable, "the host's manifest has expired and could not be renewed yet")
	ErrWebhooksBusy    = New(http.StatusServiceUnavailable, "too many webhook bodies in flight").WithRetryAfter(BusyRetryAfter)
	ErrStreamsBusy     = New(http.StatusServiceUnavailable, "too many open streams").WithRetryAfter(BusyRetryAfter)
)

// BusyRetryAfter is what a client refused for being one too many is told
// to wait.
const BusyRetryAfter = 5 * time.Second

// UnknownState is the 400 of a job listing asked for a state that does not
// exist.
func UnknownState(s string) *Error {
	return New(http.StatusBadRequest, "unknown state "+strconv.Quote(s))
}

// UnknownResult is the 400 of an agent report with a result agents do not
// report.
func UnknownResult(r string) *Error {
	return New(http.StatusBadRequest, "unknown report result "+strconv.Quote(r))
}

// InvalidBranch is the 400 of a manual trigger of a branch git would not
// name so.
func InvalidBranch(b string) *Error {
	return New(http.StatusBadRequest, "branch "+strconv.Quote(b)+" is not a valid branch name")
}

// InvalidCommit is the 400 of a manual trigger of something other than a
// full commit id.
func InvalidCommit(c string) *Error {
	return New(http.StatusBadRequest, "commit "+strconv.Quote(c)+
		" is not a full commit id (40 or 64 hex digits); to build a branch's head, give the branch and no commit")
}
