package forge

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"time"
)

// Kind names a forge API family.
type Kind string

// The forges the farm talks to. Codeberg and Gitea speak Forgejo's API.
const (
	GitHub  Kind = "github"
	Forgejo Kind = "forgejo"
)

// Event is what a webhook reports.
type Event string

// The events the farm acts on.
const (
	EventPing        Event = "ping"         // the forge checks the hook: answered, nothing queued
	EventPush        Event = "push"         // a branch or tag moved
	EventPullRequest Event = "pull_request" // a pull request opened or moved: build only, never deploy
)

// Errors a webhook parser returns; the HTTP shell maps each to a status.
var (
	// ErrSignature: the signature is missing, malformed or matches no secret (401).
	ErrSignature = errors.New("forge: bad or missing webhook signature")
	// ErrMalformed: the body is not the JSON the event promises (400).
	ErrMalformed = errors.New("forge: malformed webhook payload")
	// ErrIgnored: a well-formed event the farm does not act on (204).
	ErrIgnored = errors.New("forge: event ignored")
)

// Push is one webhook event, normalised across forges.
type Push struct {
	Event      Event     `json:"event"`
	Forge      Kind      `json:"forge"`
	FullName   string    `json:"full_name"` // "owner/name" on the forge
	WebURL     string    `json:"web_url"`   // https://host/owner/name
	CloneURL   string    `json:"clone_url"`
	Ref        string    `json:"ref"`              // refs/heads/main, refs/tags/v1, refs/pull/7/head
	Branch     string    `json:"branch,omitempty"` // "main"; empty for tags
	Before     string    `json:"before,omitempty"`
	After      string    `json:"after"` // the commit to evaluate
	Pusher     string    `json:"pusher,omitempty"`
	Deleted    bool      `json:"deleted,omitempty"`     // the ref was deleted: nothing to build
	PullNumber int       `json:"pull_number,omitempty"` // for EventPullRequest
	DeliveryID string    `json:"delivery_id,omitempty"` // set by the HTTP shell
	ReceivedAt time.Time `json:"received_at,omitzero"`  // set by the HTTP shell
}

// BranchOf returns the branch name of a refs/heads/ ref, or "".
func BranchOf(ref string) string {
	b, ok := strings.CutPrefix(ref, "refs/heads/")
	if !ok {
		return ""
	}
	return b
}

// ZeroCommit is how forges write "no commit" (a created or deleted ref).
const ZeroCommit = "0000000000000000000000000000000000000000"

// IsZeroCommit reports whether c is empty or all zeros.
func IsZeroCommit(c string) bool {
	return strings.Trim(c, "0") == ""
}

// NormalizeURL reduces a repository URL to a comparable form:
// lower-case scheme and host, no userinfo, no trailing slash or ".git".
// It returns "" for a string that is not an absolute http(s) URL.
func NormalizeURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return ""
	}
	p := strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), ".git")
	return strings.ToLower(u.Host) + p
}

// FullName is "owner/name" of a forge repository URL (the last two path
// elements, without ".git"); a URL with fewer elements is returned as is.
func FullName(u string) string {
	parts := strings.Split(strings.TrimSuffix(strings.TrimSuffix(u, "/"), ".git"), "/")
	if len(parts) < 2 {
		return u
	}
	return parts[len(parts)-2] + "/" + parts[len(parts)-1]
}

// VerifyHexHMAC checks signature, the hex HMAC-SHA256 of body (as Forgejo
// and Gitea send it), against each secret in turn, in constant time per
// secret. It returns the index of the matching secret, or ErrSignature.
func VerifyHexHMAC(body []byte, signature string, secrets [][]byte) (int, error) {
	got, err := hex.DecodeString(strings.TrimSpace(signature))
	if err != nil || len(got) != sha256.Size {
		return -1, ErrSignature
	}
	for i, s := range secrets {
		if len(s) == 0 {
			continue
		}
		m := hmac.New(sha256.New, s)
		m.Write(body)
		if hmac.Equal(m.Sum(nil), got) {
			return i, nil
		}
	}
	return -1, ErrSignature
}

// SignHex returns the hex HMAC-SHA256 of body under secret: what a forge
// sends. Tests and the benchmark use it.
func SignHex(body, secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// IsCommitID reports whether s is a full lower-case hex commit id (SHA-1 or SHA-256).
func IsCommitID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
