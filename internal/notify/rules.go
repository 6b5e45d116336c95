package notify

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/homelab-farm/farm/internal/farmapi"
)

// The states of a finished evaluation (farmapi.EvalData.State) that rules
// tell of.
const (
	evalStateFailed = "failed"
	evalStateDone   = "done"
)

// rules is what decide needs to know of the notifier's configuration.
type rules struct {
	// baseURL is where click links point (the public URL, else the
	// builder's).
	baseURL string
	// notifySuccess also tells of every switched host.
	notifySuccess bool
	// notifyDeploy tells of every new desired closure, per host, with
	// what it changes on the host.
	notifyDeploy bool
	// wakeable are the hosts poked (an agent URL and a poke token) or woken
	// (Wake-on-LAN) for a new desired closure.
	wakeable map[string]bool
}

// newRules derives the rules from a validated configuration.
func newRules(c Config, builderURL, pokeToken string) rules {
	r := rules{baseURL: c.PublicURL, notifySuccess: c.NotifySuccess, notifyDeploy: c.NotifyDeploy, wakeable: map[string]bool{}}
	if r.baseURL == "" {
		r.baseURL = builderURL
	}
	for host := range c.WakeOnLAN {
		r.wakeable[host] = true
	}
	if pokeToken != "" {
		for host, u := range c.Agents {
			if u != "" {
				r.wakeable[host] = true
			}
		}
	}
	return r
}

// link is the URL of path on the dashboard.
func (r rules) link(path string) string {
	return strings.TrimSuffix(r.baseURL, "/") + path
}

// decision is what one event calls for.
type decision struct {
	// msg is the notification to deliver; nil: none.
	msg *Message
	// wake is a host to poke, and wake if it does not answer, for its new
	// desired closure; nil: none.
	wake *hostSeq
	// reported is a host that reported, with the manifest it reported on;
	// nil: none.
	reported *hostSeq
}

// hostSeq names a host and a manifest seq.
type hostSeq struct {
	host string
	seq  uint64
}

// decide is the notifier's rules: given its state s before event ev, it
// returns the state after ev and what ev calls for. It is a pure function:
// s is not modified, and nothing is sent. An event whose data does not
// decode returns s and an error.
//
//   - A target that fails, and an evaluation that fails as a whole, are
//     told of; so is the next success of the same thing (a recovery).
//   - A deploy that is rolled back or fails is told of once per distinct
//     reason; the host's next switched or up-to-date report is a recovery.
//   - A switch is told of only with notify_success.
//   - A new desired closure is told of, per host with what it changes
//     there, only with notify_deploy.
//   - A failed build names the host's last good build of the branch and
//     what that build changed.
//   - A failed collection of the binary cache is told of once per distinct
//     error; the next successful one is a recovery.
//   - A new desired closure for a host that is poked or woken asks for a
//     wake, which the host's report of that seq (or a newer one) ends; so
//     does a rollout passing over the host asleep (host.wake): the first
//     wake may have given up long before.
//   - A rollout that halts is told of once (the builder appends one event
//     per halt, before the halting host's report): that host's failed or
//     rolled-back report of the manifest it halted on is then not told of
//     again, though it still counts as a failure whose end is a recovery.
func decide(r rules, s state, ev Event) (state, decision, error) {
	next := s.clone()
	var d decision
	var err error
	switch ev.Type {
	case farmapi.EvalStarted:
		var e farmapi.EvalData
		if e, err = decode[farmapi.EvalData](ev); err == nil {
			next.Evals[e.Eval] = evalInfo{Repo: e.Repo, Branch: e.Branch, Commit: e.Commit}
		}
	case farmapi.EvalFinished:
		var e farmapi.EvalData
		if e, err = decode[farmapi.EvalData](ev); err == nil {
			d.msg = evalFinished(&next, e)
		}
	case farmapi.TargetFailed:
		var t farmapi.TargetData
		if t, err = decode[farmapi.TargetData](ev); err == nil {
			d.msg = targetFailed(r, &next, t)
		}
	case farmapi.TargetBuilt, farmapi.TargetCached:
		var t farmapi.TargetData
		if t, err = decode[farmapi.TargetData](ev); err == nil {
			d.msg = targetBuilt(&next, t)
		}
	case farmapi.CacheCollectionFailed:
		var c farmapi.CollectionData
		if c, err = decode[farmapi.CollectionData](ev); err == nil {
			d.msg = collectionFailed(&next, c)
		}
	case farmapi.CacheCollected:
		var c farmapi.CollectionData
		if c, err = decode[farmapi.CollectionData](ev); err == nil {
			d.msg = collected(&next, c)
		}
	case farmapi.HostDesired:
		var h farmapi.HostDesiredData
		if h, err = decode[farmapi.HostDesiredData](ev); err == nil && h.Host != "" {
			if r.notifyDeploy {
				d.msg = deploying(r, h)
			}
			d.wake = wake(r, &next, h.Host, h.Seq)
		}
	case farmapi.HostWake:
		var h farmapi.HostWakeData
		if h, err = decode[farmapi.HostWakeData](ev); err == nil && h.Host != "" && h.Seq != 0 {
			d.wake = wake(r, &next, h.Host, h.Seq)
		}
	case farmapi.RolloutHalted:
		var h farmapi.RolloutHaltedData
		if h, err = decode[farmapi.RolloutHaltedData](ev); err == nil {
			d.msg = rolloutHalted(r, h)
			if h.Host != "" && h.Seq != 0 {
				if next.Halted == nil {
					next.Halted = map[string]uint64{}
				}
				next.Halted[h.Host] = h.Seq
			}
		}
	case farmapi.HostReport:
		var h farmapi.HostReportData
		if h, err = decode[farmapi.HostReportData](ev); err == nil {
			d.msg = hostReport(r, &next, h)
			if h.Host != "" {
				d.reported = &hostSeq{h.Host, h.Seq}
			}
		}
	}
	if err != nil {
		return s, decision{}, err
	}
	return next, d, nil
}

// decode reads ev's data as a T; no data is the zero T.
func decode[T any](ev Event) (T, error) {
	var v T
	if len(ev.Data) > 0 {
		if err := json.Unmarshal(ev.Data, &v); err != nil {
			return v, fmt.Errorf("event %d data: %w", ev.ID, err)
		}
	}
	return v, nil
}

func evalFinished(s *state, d farmapi.EvalData) *Message {
	delete(s.Evals, d.Eval)
	key := "eval:" + d.Repo + "/" + d.Branch
	switch {
	case d.State == evalStateFailed && d.Failed == 0:
		// Failed as a whole (no target to blame): nothing else says so.
		s.Failing[key] = "evaluation failed"
		return &Message{
			Title:    "Evaluation failed: " + d.Repo + " " + d.Branch,
			Body:     fmt.Sprintf("Evaluation %d of %s %s at %s failed.", d.Eval, d.Repo, d.Branch, short(d.Commit)),
			Priority: 4, Tags: []string{"rotating_light"},
		}
	case d.State == evalStateDone && s.Failing[key] != "":
		delete(s.Failing, key)
		return &Message{
			Title: "Evaluation recovered: " + d.Repo + " " + d.Branch,
			Body:  fmt.Sprintf("%s %s evaluates again at %s.", d.Repo, d.Branch, short(d.Commit)),
			Tags:  []string{"white_check_mark"},
		}
	}
	return nil
}

func targetFailed(r rules, s *state, d farmapi.TargetData) *Message {
	e := s.Evals[d.Eval]
	key := "build:" + e.Repo + "/" + e.Branch + "/" + d.Host
	s.Failing[key] = d.Reason
	where := strings.TrimSpace(e.Repo + " " + e.Branch)
	if e.Commit != "" {
		where += " at " + short(e.Commit)
	}
	body := fmt.Sprintf("%s (%s) failed", d.Host, d.System)
	if where != "" {
		body += " on " + where
	}
	if d.Reason != "" {
		body += ": " + d.Reason
	}
	if lg := d.LastGood; lg != nil && lg.Change != "" {
		body = fmt.Sprintf("%s failed; last good build changed %s\n%s", d.Host, plainArrows(lg.Change), body)
	}
	return &Message{
		Title: "Build failed: " + d.Host, Body: body, Priority: 4,
		Tags:  []string{"rotating_light", d.Host},
		Click: r.link(fmt.Sprintf("/api/targets/%d/log", d.Target)),
	}
}

func targetBuilt(s *state, d farmapi.TargetData) *Message {
	e := s.Evals[d.Eval]
	key := "build:" + e.Repo + "/" + e.Branch + "/" + d.Host
	if _, failing := s.Failing[key]; !failing {
		return nil
	}
	delete(s.Failing, key)
	return &Message{
		Title: "Build recovered: " + d.Host,
		Body:  fmt.Sprintf("%s (%s) builds again on %s %s at %s.", d.Host, d.System, e.Repo, e.Branch, short(e.Commit)),
		Tags:  []string{"white_check_mark", d.Host},
	}
}

func hostReport(r rules, s *state, d farmapi.HostReportData) *Message {
	if w, ok := s.Waking[d.Host]; ok && d.Seq >= w {
		delete(s.Waking, d.Host)
	}
	key := "deploy:" + d.Host
	haltedOn, halted := s.Halted[d.Host]
	if halted && d.Seq != haltedOn {
		delete(s.Halted, d.Host) // a report of another manifest: the halt is behind
	}
	switch d.Result {
	case farmapi.ResultRolledBack, farmapi.ResultFailed:
		why := string(d.Result) + ": " + d.Reason
		if s.Failing[key] == why {
			return nil // the same failure again: told already
		}
		s.Failing[key] = why
		if halted && d.Seq == haltedOn {
			return nil // the rollout's halt told of it
		}
		title := "Deploy failed: " + d.Host
		if d.Result == farmapi.ResultRolledBack {
			title = "Deploy rolled back: " + d.Host
		}
		return &Message{
			Title: title, Priority: 4, Tags: []string{"warning", d.Host},
			Body: fmt.Sprintf("%s %s (manifest %d); it runs %s. %s", d.Host, d.Result, d.Seq, d.Current, d.Reason),
		}
	case farmapi.ResultSwitched, farmapi.ResultUpToDate:
		if _, failing := s.Failing[key]; failing {
			delete(s.Failing, key)
			return &Message{
				Title: "Deploy recovered: " + d.Host, Tags: []string{"white_check_mark", d.Host},
				Body: fmt.Sprintf("%s is %s, running %s.", d.Host, d.Result, d.Current),
			}
		}
		if d.Result == farmapi.ResultSwitched && r.notifySuccess {
			return &Message{
				Title: "Deployed: " + d.Host, Priority: 2, Tags: []string{"rocket", d.Host},
				Body: fmt.Sprintf("%s switched to %s (manifest %d).", d.Host, d.Current, d.Seq),
			}
		}
	}
	return nil
}

// deploying tells of a host's new desired closure and what it changes on
// the host.
func deploying(r rules, d farmapi.HostDesiredData) *Message {
	m := &Message{
		Title: "Deploying: " + d.Host, Priority: 2, Tags: []string{"package", d.Host},
		Body: fmt.Sprintf("%s gets %s at %s (manifest %d).", d.Host, d.StorePath, short(d.Commit), d.Seq),
	}
	if diff := d.Diff; diff != nil {
		m.Body = fmt.Sprintf("%s: %s\n%s\n%s at %s (manifest %d).", d.Host, diff.Summary, plainArrows(diff.Headline), d.StorePath, short(d.Commit), d.Seq)
		if diff.Target > 0 {
			m.Click = r.link(fmt.Sprintf("/targets/%d", diff.Target))
		}
	}
	return m
}

// plainArrows writes a diff's version changes with ASCII arrows, which
// every notification client shows ("linux 6.12.9 -> 6.12.10").
func plainArrows(s string) string {
	return strings.ReplaceAll(s, " → ", " -> ")
}

// rolloutHalted tells of a halted rollout, once per halt.
func rolloutHalted(r rules, d farmapi.RolloutHaltedData) *Message {
	what := "Rollout"
	if d.Kind == "rollback" {
		what = "Rollback"
	}
	body := fmt.Sprintf("%s of %s at %s halted in wave %d: %s %s.", what, d.Repo, short(d.Commit), d.Wave, d.Host, d.Reason)
	if d.Detail != "" {
		body += " " + d.Detail + "."
	}
	body += " Later waves keep their closures until it is resumed or aborted, or a newer commit supersedes it."
	return &Message{
		Title: what + " halted: " + d.Repo + " " + short(d.Commit), Body: body, Priority: 4,
		Tags:  []string{"octagonal_sign", d.Host},
		Click: r.link(fmt.Sprintf("/rollouts/%d", d.Rollout)),
	}
}

// cacheGCKey is the Failing entry of the binary cache's collection.
const cacheGCKey = "gc:cache"

func collectionFailed(s *state, d farmapi.CollectionData) *Message {
	why := d.Error
	if why == "" {
		why = "unknown error"
	}
	if s.Failing[cacheGCKey] == why {
		return nil // the same failure again: told already
	}
	s.Failing[cacheGCKey] = why
	body := "The binary cache's garbage collection failed"
	if d.Instance != "" {
		body += " on " + d.Instance
	}
	return &Message{
		Title: "Cache collection failed", Priority: 4, Tags: []string{"warning", "wastebasket"},
		Body: body + ": " + why,
	}
}

func collected(s *state, d farmapi.CollectionData) *Message {
	if _, failing := s.Failing[cacheGCKey]; !failing {
		return nil
	}
	delete(s.Failing, cacheGCKey)
	return &Message{
		Title: "Cache collection recovered", Tags: []string{"white_check_mark", "wastebasket"},
		Body: fmt.Sprintf("The binary cache's garbage collection ran again: %d objects (%d bytes) freed, %d objects (%d bytes) kept.",
			d.FreedObjects, d.FreedBytes, d.CacheObjects, d.CacheBytes),
	}
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

// wake starts (or takes over) the wake of host for its manifest seq, if the
// notifier pokes or wakes it; nil otherwise.
func wake(r rules, next *state, host string, seq uint64) *hostSeq {
	if !r.wakeable[host] {
		return nil
	}
	if seq > next.Waking[host] {
		next.Waking[host] = seq
	}
	return &hostSeq{host, seq}
}
