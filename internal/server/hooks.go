package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"

	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/forge/forgejo"
	"github.com/homelab-farm/farm/internal/forge/github"
	"github.com/homelab-farm/farm/internal/httpsafe"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/server/httperr"
)

// hook is what differs between forges' webhook endpoints.
type hook struct {
	forge   forge.Kind
	headers func(http.Header) (event, delivery, signature string)
	verify  func(signature string, body []byte, secrets [][]byte) (int, error)
	parse   func(event string, body []byte) (forge.Push, error)
}

var (
	githubHook = hook{
		forge: forge.GitHub,
		headers: func(h http.Header) (string, string, string) {
			return h.Get(github.EventHeader), h.Get(github.DeliveryHeader), h.Get(github.SignatureHeader)
		},
		verify: github.Verify,
		parse:  github.Parse,
	}
	forgejoHook = hook{forge: forge.Forgejo, headers: forgejo.Headers, verify: forgejo.Verify, parse: forgejo.Parse}
)

func (s *Server) githubHook(w http.ResponseWriter, r *http.Request) error {
	return s.webhook(w, r, githubHook)
}

func (s *Server) forgejoHook(w http.ResponseWriter, r *http.Request) error {
	return s.webhook(w, r, forgejoHook)
}

// webhook is the thin shell around a forge's parser: size limit,
// signature, parse, match the repository, enqueue durably, then 202.
func (s *Server) webhook(w http.ResponseWriter, r *http.Request, h hook) error {
	received := s.now().UTC()
	body, release, err := readHookBody(w, r, s.hookBudget, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	defer release()
	event, delivery, signature := h.headers(r.Header)

	// Which remotes of this forge does the signature belong to? Checked
	// before the body is trusted for anything; each distinct secret is
	// tried once, however many remotes share it.
	var signedBy []remote
	tried := map[string]bool{}
	for _, rm := range s.remotes {
		if rm.cfg.Forge != h.forge {
			continue
		}
		for _, secret := range rm.cfg.Secrets {
			ok, seen := tried[string(secret)]
			if !seen {
				_, err := h.verify(signature, body, [][]byte{secret})
				ok = err == nil
				tried[string(secret)] = ok
			}
			if ok {
				signedBy = append(signedBy, rm)
				break
			}
		}
	}
	if len(signedBy) == 0 {
		return httperr.ErrSignature.Wrap(forge.ErrSignature)
	}

	payload, err := formPayload(r.Header.Get("Content-Type"), body)
	if err != nil {
		return httperr.ErrMalformedPayload.Wrap(err)
	}
	push, err := h.parse(event, payload)
	switch {
	case errors.Is(err, forge.ErrIgnored):
		w.WriteHeader(http.StatusNoContent)
		return nil
	case err != nil:
		return httperr.ErrMalformedPayload.Wrap(err)
	}
	push.DeliveryID, push.ReceivedAt = delivery, received
	if push.Event == forge.EventPing {
		httperr.WriteJSON(w, http.StatusOK, map[string]string{"status": "pong"})
		return nil
	}

	rm, ok := matchRemote(signedBy, push)
	if !ok {
		if _, known := matchRemote(s.remotes, push); known {
			// Signed with another remote's secret.
			return httperr.ErrSignature.Wrap(forge.ErrSignature)
		}
		return s.ignore(w, push, "repository not configured")
	}
	if push.Deleted {
		return s.ignore(w, push, "ref deleted")
	}
	var branch string
	var deploy bool
	switch push.Event {
	case forge.EventPush:
		var evaluate bool
		if evaluate, deploy = rm.repo.Branch(push.Branch); !evaluate {
			return s.ignore(w, push, "branch not evaluated")
		}
		branch = push.Branch
	case forge.EventPullRequest:
		branch = fmt.Sprintf("pull/%d", push.PullNumber) // newer commits of a PR supersede older ones
	}
	pj, err := json.Marshal(push)
	if err != nil {
		return err
	}
	req := queue.EnqueueRequest{
		Kind:      queue.KindEval,
		Key:       queue.EvalKey(rm.repo.Name, push.After),
		Repo:      rm.repo.Name,
		Branch:    branch,
		Commit:    push.After,
		Before:    push.Before,
		Deploy:    deploy,
		Supersede: true,
		Remote:    queue.Remote{Forge: string(h.forge), URL: rm.cfg.URL, FullName: forge.FullName(rm.cfg.URL)},
		Payload:   pj,
	}
	if delivery != "" {
		req.DeliveryKey = string(h.forge) + ":" + delivery
	}
	res, err := s.jobs.Enqueue(r.Context(), req)
	if err != nil {
		return httperr.ErrQueueUnavailable.Wrap(err)
	}
	if res.Created && s.onQueued != nil {
		s.onQueued(res)
	}
	if res.Created && s.events != nil {
		// Recorded in the background: the push is durable in the queue
		// already, and the 202 must not wait for a second fsync.
		s.events.RecordLater(string(farmapi.EvalQueued), farmapi.EvalQueuedData{
			Job: res.JobID, Repo: rm.repo.Name, Branch: push.Branch, Commit: push.After,
			Forge: string(h.forge), Superseded: res.Superseded, Late: res.Late,
		})
	}
	s.log.Info("push queued", logForge, h.forge, logDelivery, delivery, logRepo, rm.repo.Name,
		logCommit, push.After, logJob, res.JobID, logCreated, res.Created, logReplay, res.Replay)
	httperr.WriteJSON(w, http.StatusAccepted, farmapi.EnqueueResponse{
		Job: res.JobID, Commit: push.After, Created: res.Created, Replay: res.Replay, Late: res.Late, Superseded: res.Superseded,
	})
	return nil
}

func (s *Server) ignore(w http.ResponseWriter, p forge.Push, why string) error {
	s.log.Info("webhook ignored", logForge, p.Forge, logDelivery, p.DeliveryID, logReason, why, logRef, p.Ref)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// matchRemote finds the remote whose URL is the push's repository.
func matchRemote(remotes []remote, p forge.Push) (remote, bool) {
	web, clone := forge.NormalizeURL(p.WebURL), forge.NormalizeURL(p.CloneURL)
	for _, rm := range remotes {
		if rm.cfg.Forge == p.Forge && rm.url != "" && (rm.url == web || rm.url == clone) {
			return rm, true
		}
	}
	return remote{}, false
}

// formPayload returns the JSON of a webhook body: the body itself, or its
// "payload" field when the hook is set to send a form.
func formPayload(contentType string, body []byte) ([]byte, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt != "application/x-www-form-urlencoded" {
		return body, nil
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("form body: %w", err)
	}
	return []byte(v.Get("payload")), nil
}

// hookFirstRead is the buffer a webhook body is first read into: what a
// client that announces a body and sends nothing holds.
const hookFirstRead = 4 << 10

// readHookBody reads a webhook body of at most limit bytes, holding the
// memory it reads into in the budget until release is called: a burst of
// bodies, signed or not, never holds more than the budget. The first
// hookFirstRead bytes go into a small buffer, so a client that announces a
// large body and sends nothing holds next to nothing; then a body of known
// length takes its Content-Length at once, and a chunked one doubles its
// buffer as bytes arrive. A body that does not fit is refused with 503,
// the rest of it unread.
func readHookBody(w http.ResponseWriter, r *http.Request, budget *httpsafe.Budget, limit int64) (body []byte, release func(), err error) {
	if r.ContentLength > limit {
		return nil, nil, httperr.ErrBodyTooLarge
	}
	var taken int64 // the capacity of body: an outgrown buffer is garbage
	release = func() { budget.Give(taken); taken = 0 }
	fail := func(err error) ([]byte, func(), error) {
		release()
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, nil, httperr.ErrBodyTooLarge
		}
		return nil, nil, httperr.ErrUnreadableBody.Wrap(err)
	}
	most := limit
	if r.ContentLength >= 0 {
		most = r.ContentLength
	}
	rd := http.MaxBytesReader(w, r.Body, limit)
	for {
		if len(body) == cap(body) && int64(cap(body)) < most {
			grown := min(max(2*int64(cap(body)), hookFirstRead), most)
			if r.ContentLength >= 0 && cap(body) > 0 {
				grown = most // one buffer of the announced length, no garbage of growth
			}
			if !budget.TryTake(grown - taken) {
				release()
				return nil, nil, httperr.ErrWebhooksBusy
			}
			taken = grown
			body = append(make([]byte, 0, grown), body...)
		}
		var n int
		if len(body) < cap(body) {
			n, err = rd.Read(body[len(body):cap(body)])
			body = body[:len(body)+n]
		} else {
			// As many bytes as there may be: the body must end here.
			var extra [1]byte
			if n, err = rd.Read(extra[:]); n > 0 {
				return fail(&http.MaxBytesError{Limit: limit})
			}
		}
		if errors.Is(err, io.EOF) {
			return body, release, nil
		}
		if err != nil {
			return fail(err)
		}
	}
}
