package notify

import (
	"encoding/json"
	"fmt"
	"strings"
)

// eventData is the union of the fields of the events acted on.
type eventData struct {
	Eval      int64  `json:"eval"`
	Target    int64  `json:"target"`
	Repo      string `json:"repo"`
	Branch    string `json:"branch"`
	Commit    string `json:"commit"`
	State     string `json:"state"`
	Failed    int    `json:"failed"`
	Host      string `json:"host"`
	System    string `json:"system"`
	Reason    string `json:"reason"`
	StorePath string `json:"store_path"`
	Current   string `json:"current"`
	Result    string `json:"result"`
	Seq       uint64 `json:"seq"`
}

// decide updates s for ev and returns the notification ev calls for.
func (n *Notifier) decide(s *state, ev Event) (*Message, error) {
	var d eventData
	if len(ev.Data) > 0 {
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return nil, fmt.Errorf("event %d data: %w", ev.ID, err)
		}
	}
	switch ev.Type {
	case EventEvalStarted:
		s.Evals[d.Eval] = evalInfo{Repo: d.Repo, Branch: d.Branch, Commit: d.Commit}
	case EventEvalFinished:
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
			}, nil
		case d.State == evalStateDone && s.Failing[key] != "":
			delete(s.Failing, key)
			return &Message{
				Title: "Evaluation recovered: " + d.Repo + " " + d.Branch,
				Body:  fmt.Sprintf("%s %s evaluates again at %s.", d.Repo, d.Branch, short(d.Commit)),
				Tags:  []string{"white_check_mark"},
			}, nil
		}
	case EventTargetFailed:
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
		return &Message{
			Title: "Build failed: " + d.Host, Body: body, Priority: 4,
			Tags:  []string{"rotating_light", d.Host},
			Click: n.link(fmt.Sprintf("/api/targets/%d/log", d.Target)),
		}, nil
	case EventTargetBuilt, EventTargetCached:
		e := s.Evals[d.Eval]
		key := "build:" + e.Repo + "/" + e.Branch + "/" + d.Host
		if _, failing := s.Failing[key]; failing {
			delete(s.Failing, key)
			return &Message{
				Title: "Build recovered: " + d.Host,
				Body:  fmt.Sprintf("%s (%s) builds again on %s %s at %s.", d.Host, d.System, e.Repo, e.Branch, short(e.Commit)),
				Tags:  []string{"white_check_mark", d.Host},
			}, nil
		}
	case EventHostDesired:
		if n.wakeable(d.Host) && d.Seq > s.Waking[d.Host] {
			s.Waking[d.Host] = d.Seq
		}
	case EventHostReport:
		if w, ok := s.Waking[d.Host]; ok && d.Seq >= w {
			delete(s.Waking, d.Host)
		}
		key := "deploy:" + d.Host
		switch d.Result {
		case reportRolledBack, reportFailed:
			why := d.Result + ": " + d.Reason
			if s.Failing[key] == why {
				return nil, nil // the same failure again: told already
			}
			s.Failing[key] = why
			title := "Deploy failed: " + d.Host
			if d.Result == reportRolledBack {
				title = "Deploy rolled back: " + d.Host
			}
			return &Message{
				Title: title, Priority: 4, Tags: []string{"warning", d.Host},
				Body: fmt.Sprintf("%s %s (manifest %d); it runs %s. %s", d.Host, d.Result, d.Seq, d.Current, d.Reason),
			}, nil
		case reportSwitched, reportUpToDate:
			if _, failing := s.Failing[key]; failing {
				delete(s.Failing, key)
				return &Message{
					Title: "Deploy recovered: " + d.Host, Tags: []string{"white_check_mark", d.Host},
					Body: fmt.Sprintf("%s is %s, running %s.", d.Host, d.Result, d.Current),
				}, nil
			}
			if d.Result == reportSwitched && n.o.Config.NotifySuccess {
				return &Message{
					Title: "Deployed: " + d.Host, Priority: 2, Tags: []string{"rocket", d.Host},
					Body: fmt.Sprintf("%s switched to %s (manifest %d).", d.Host, d.Current, d.Seq),
				}, nil
			}
		}
	}
	return nil, nil
}

func (n *Notifier) link(path string) string {
	base := n.o.Config.PublicURL
	if base == "" {
		base = n.o.BuilderURL
	}
	return strings.TrimSuffix(base, "/") + path
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
