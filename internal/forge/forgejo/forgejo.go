package forgejo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/homelab-farm/farm/internal/forge"
)

// Header names. Forgejo's own are preferred; Gitea's are the fallback.
const (
	EventHeader          = "X-Forgejo-Event"
	DeliveryHeader       = "X-Forgejo-Delivery"
	SignatureHeader      = "X-Forgejo-Signature"
	GiteaEventHeader     = "X-Gitea-Event"
	GiteaDeliveryHeader  = "X-Gitea-Delivery"
	GiteaSignatureHeader = "X-Gitea-Signature"
)

// Headers picks the event, delivery id and signature of a Forgejo or Gitea
// webhook request. When X-Forgejo-Signature is present it is the one that
// counts: a bad one is not rescued by a good X-Gitea-Signature.
func Headers(h http.Header) (event, delivery, signature string) {
	pick := func(a, b string) string {
		if v := h.Get(a); v != "" {
			return v
		}
		return h.Get(b)
	}
	return pick(EventHeader, GiteaEventHeader), pick(DeliveryHeader, GiteaDeliveryHeader),
		pick(SignatureHeader, GiteaSignatureHeader)
}

// Verify checks a hex HMAC-SHA256 signature of body against each secret and
// returns the index of the one that matches, or forge.ErrSignature.
func Verify(signature string, body []byte, secrets [][]byte) (int, error) {
	return forge.VerifyHexHMAC(body, signature, secrets)
}

type user struct {
	Login    string `json:"login"`
	Username string `json:"username"`
	Name     string `json:"name"`
}

func (u *user) name() string {
	if u == nil {
		return ""
	}
	for _, s := range []string{u.Login, u.Username, u.Name} {
		if s != "" {
			return s
		}
	}
	return ""
}

type repository struct {
	FullName string `json:"full_name"`
	HTMLURL  string `json:"html_url"`
	CloneURL string `json:"clone_url"`
}

type pushPayload struct {
	Ref        string      `json:"ref"`
	Before     string      `json:"before"`
	After      string      `json:"after"`
	Repository *repository `json:"repository"`
	Pusher     *user       `json:"pusher"`
	Sender     *user       `json:"sender"`
}

type pullRequestPayload struct {
	Action      string `json:"action"`
	Number      int    `json:"number"`
	PullRequest *struct {
		Head struct {
			Ref string `json:"ref"`
			SHA string `json:"sha"`
		} `json:"head"`
	} `json:"pull_request"`
	Repository *repository `json:"repository"`
	Sender     *user       `json:"sender"`
}

// Parse turns a Forgejo or Gitea webhook (event name and JSON body) into a
// Push. It returns forge.ErrIgnored for events and pull request actions the
// farm does not act on and forge.ErrMalformed for a body that does not
// parse or lacks the repository or commit.
func Parse(event string, body []byte) (forge.Push, error) {
	switch event {
	case "ping":
		// Forgejo's "test delivery" sends a push; a ping is answered all the same.
		var v map[string]any
		if err := decode(body, &v); err != nil {
			return forge.Push{}, fmt.Errorf("forgejo ping: %v: %w", err, forge.ErrMalformed)
		}
		return forge.Push{Event: forge.EventPing, Forge: forge.Forgejo}, nil
	case "push":
		var e pushPayload
		if err := decode(body, &e); err != nil {
			return forge.Push{}, fmt.Errorf("forgejo push: %v: %w", err, forge.ErrMalformed)
		}
		p := forge.Push{
			Event:   forge.EventPush,
			Forge:   forge.Forgejo,
			Ref:     e.Ref,
			Branch:  forge.BranchOf(e.Ref),
			Before:  e.Before,
			After:   e.After,
			Pusher:  e.Pusher.name(),
			Deleted: forge.IsZeroCommit(e.After),
		}
		if p.Pusher == "" {
			p.Pusher = e.Sender.name()
		}
		if forge.IsZeroCommit(p.Before) {
			p.Before = ""
		}
		return finish(p, e.Repository)
	case "pull_request":
		var e pullRequestPayload
		if err := decode(body, &e); err != nil {
			return forge.Push{}, fmt.Errorf("forgejo pull_request: %v: %w", err, forge.ErrMalformed)
		}
		switch e.Action {
		case "opened", "reopened", "synchronized":
		default:
			return forge.Push{}, fmt.Errorf("forgejo pull_request action %q: %w", e.Action, forge.ErrIgnored)
		}
		if e.PullRequest == nil {
			return forge.Push{}, fmt.Errorf("forgejo pull_request: no pull_request: %w", forge.ErrMalformed)
		}
		p := forge.Push{
			Event:      forge.EventPullRequest,
			Forge:      forge.Forgejo,
			Ref:        fmt.Sprintf("refs/pull/%d/head", e.Number),
			After:      e.PullRequest.Head.SHA,
			Pusher:     e.Sender.name(),
			PullNumber: e.Number,
		}
		return finish(p, e.Repository)
	}
	return forge.Push{}, fmt.Errorf("forgejo event %q: %w", event, forge.ErrIgnored)
}

func decode(body []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("trailing data after JSON value")
	}
	return nil
}

func finish(p forge.Push, r *repository) (forge.Push, error) {
	if r == nil || r.FullName == "" || (r.HTMLURL == "" && r.CloneURL == "") {
		return forge.Push{}, fmt.Errorf("forgejo %s: no repository: %w", p.Event, forge.ErrMalformed)
	}
	p.FullName, p.WebURL, p.CloneURL = r.FullName, r.HTMLURL, r.CloneURL
	if p.Event == forge.EventPush && p.Ref == "" {
		return forge.Push{}, fmt.Errorf("forgejo push: no ref: %w", forge.ErrMalformed)
	}
	if !p.Deleted && !forge.IsCommitID(p.After) {
		return forge.Push{}, fmt.Errorf("forgejo %s: bad commit id %q: %w", p.Event, p.After, forge.ErrMalformed)
	}
	return p, nil
}
