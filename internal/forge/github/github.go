package github

import (
	"fmt"
	"strings"

	gh "github.com/google/go-github/v93/github"

	"github.com/homelab-farm/farm/internal/forge"
)

// Header names GitHub sends with a webhook.
const (
	EventHeader     = gh.EventTypeHeader       // X-GitHub-Event
	DeliveryHeader  = gh.DeliveryIDHeader      // X-GitHub-Delivery
	SignatureHeader = gh.SHA256SignatureHeader // X-Hub-Signature-256
)

// Verify checks the X-Hub-Signature-256 value ("sha256=<hex>") of body
// against each secret and returns the index of the one that matches, or
// forge.ErrSignature. The older SHA-1 X-Hub-Signature is not accepted.
func Verify(signature string, body []byte, secrets [][]byte) (int, error) {
	if !strings.HasPrefix(signature, "sha256=") {
		return -1, forge.ErrSignature
	}
	for i, s := range secrets {
		if len(s) == 0 {
			continue
		}
		// ValidateSignature compares with hmac.Equal (constant time).
		if gh.ValidateSignature(signature, body, s) == nil {
			return i, nil
		}
	}
	return -1, forge.ErrSignature
}

// Sign returns the X-Hub-Signature-256 value GitHub would send for body.
func Sign(body, secret []byte) string {
	return "sha256=" + forge.SignHex(body, secret)
}

// Parse turns a GitHub webhook (event name and JSON body) into a Push.
// It returns forge.ErrIgnored for events and pull request actions the
// farm does not act on, and forge.ErrMalformed for a body that does not
// parse or lacks the repository or commit.
func Parse(event string, body []byte) (forge.Push, error) {
	switch event {
	case "ping", "push", "pull_request":
	default:
		return forge.Push{}, fmt.Errorf("github event %q: %w", event, forge.ErrIgnored)
	}
	v, err := gh.ParseWebHook(event, body)
	if err != nil {
		return forge.Push{}, fmt.Errorf("github %s: %v: %w", event, err, forge.ErrMalformed)
	}
	switch e := v.(type) {
	case *gh.PingEvent:
		p := forge.Push{Event: forge.EventPing, Forge: forge.GitHub}
		if e.Repo != nil {
			p.FullName, p.WebURL, p.CloneURL = e.Repo.GetFullName(), e.Repo.GetHTMLURL(), e.Repo.GetCloneURL()
		}
		return p, nil
	case *gh.PushEvent:
		return parsePush(e)
	case *gh.PullRequestEvent:
		return parsePullRequest(e)
	}
	return forge.Push{}, fmt.Errorf("github event %q: %w", event, forge.ErrIgnored)
}

func parsePush(e *gh.PushEvent) (forge.Push, error) {
	r := e.GetRepo()
	p := forge.Push{
		Event:    forge.EventPush,
		Forge:    forge.GitHub,
		FullName: r.GetFullName(),
		WebURL:   r.GetHTMLURL(),
		CloneURL: r.GetCloneURL(),
		Ref:      e.GetRef(),
		Branch:   forge.BranchOf(e.GetRef()),
		Before:   e.GetBefore(),
		After:    e.GetAfter(),
		Pusher:   e.GetPusher().GetName(),
		Deleted:  e.GetDeleted() || forge.IsZeroCommit(e.GetAfter()),
	}
	if p.Pusher == "" {
		p.Pusher = e.GetSender().GetLogin()
	}
	if forge.IsZeroCommit(p.Before) {
		p.Before = ""
	}
	if err := check(p); err != nil {
		return forge.Push{}, err
	}
	return p, nil
}

func parsePullRequest(e *gh.PullRequestEvent) (forge.Push, error) {
	switch e.GetAction() {
	case "opened", "synchronize", "reopened":
	default:
		return forge.Push{}, fmt.Errorf("github pull_request action %q: %w", e.GetAction(), forge.ErrIgnored)
	}
	pr := e.GetPullRequest()
	r := e.GetRepo()
	p := forge.Push{
		Event:      forge.EventPullRequest,
		Forge:      forge.GitHub,
		FullName:   r.GetFullName(),
		WebURL:     r.GetHTMLURL(),
		CloneURL:   r.GetCloneURL(),
		Ref:        fmt.Sprintf("refs/pull/%d/head", e.GetNumber()),
		After:      pr.GetHead().GetSHA(),
		Pusher:     e.GetSender().GetLogin(),
		PullNumber: e.GetNumber(),
	}
	if err := check(p); err != nil {
		return forge.Push{}, err
	}
	return p, nil
}

// check makes sure a Push names its repository and, unless the ref was
// deleted, a commit.
func check(p forge.Push) error {
	if p.FullName == "" || (p.WebURL == "" && p.CloneURL == "") {
		return fmt.Errorf("github %s: no repository: %w", p.Event, forge.ErrMalformed)
	}
	if p.Ref == "" {
		return fmt.Errorf("github %s: no ref: %w", p.Event, forge.ErrMalformed)
	}
	if !p.Deleted && !forge.IsCommitID(p.After) {
		return fmt.Errorf("github %s: bad commit id %q: %w", p.Event, p.After, forge.ErrMalformed)
	}
	return nil
}
