package notify

import (
	"encoding/json"
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/farmapi"
)

// TestDecideRules checks each of decide's rules on one event: what it
// notifies, whom it wakes, and the state it leaves. decide is pure: the
// state handed in is never modified.
func TestDecideRules(t *testing.T) {
	const commit = "0123456789abcdef0123456789abcdef01234567"
	evals := map[int64]evalInfo{1: {Repo: "fleet", Branch: "main", Commit: commit}}
	event := func(typ farmapi.EventType, data any) Event {
		b, err := json.Marshal(data)
		if err != nil {
			t.Fatal(err)
		}
		return Event{ID: 9, Type: typ, Data: b}
	}
	report := func(host string, r farmapi.Result, reason string, seq uint64) Event {
		return event(farmapi.HostReport, farmapi.HostReportData{Host: host, Report: farmapi.Report{Current: "/nix/store/aaaa-" + host, Result: r, Reason: reason, Seq: seq}})
	}
	targetEv := func(typ farmapi.EventType, host string) Event {
		return event(typ, farmapi.TargetData{Eval: 1, Target: 11, Host: host, System: "x86_64-linux", State: "failed", Reason: "exit 1"})
	}
	desired := func(host string, seq uint64) Event {
		return event(farmapi.HostDesired, farmapi.HostDesiredData{Host: host, StorePath: "/nix/store/bbbb-" + host, Commit: commit, Seq: seq})
	}
	desiredDiff := func(host string, seq uint64) Event {
		return event(farmapi.HostDesired, farmapi.HostDesiredData{Host: host, StorePath: "/nix/store/bbbb-" + host, Commit: commit, Seq: seq,
			Diff: &farmapi.DiffBrief{Against: farmapi.AgainstCurrent, Target: 12, Summary: "+2 ~14 -1 · 38 MiB", Headline: "linux 6.12.9 → 6.12.10, +16 more"}})
	}
	failedAfter := func(host string, lg *farmapi.LastGood) Event {
		return event(farmapi.TargetFailed, farmapi.TargetData{Eval: 1, Target: 11, Host: host, System: "x86_64-linux", State: "failed", Reason: "exit 1", LastGood: lg})
	}
	plain := Config{PublicURL: "https://farm.example"}
	success := Config{PublicURL: "https://farm.example", NotifySuccess: true}
	withAgent := Config{Agents: map[string]string{"malphas": "http://127.0.0.1:7741"}}
	withWoL := Config{WakeOnLAN: map[string]WakeTarget{"andras": {MAC: "00:11:22:33:44:55"}}}
	deploys := Config{PublicURL: "https://farm.example", NotifyDeploy: true, WakeOnLAN: map[string]WakeTarget{"andras": {MAC: "00:11:22:33:44:55"}}}

	tests := []struct {
		name      string
		cfg       Config
		pokeToken string
		failing   map[string]string // before
		waking    map[string]uint64 // before
		ev        Event

		wantTitle    string // "" for no notification
		wantClick    string
		wantBody     string // the body starts with it
		wantWake     *hostSeq
		wantReported *hostSeq
		wantFailing  map[string]string // after
		wantWaking   map[string]uint64 // after
	}{
		{
			name: "a rollout halts", cfg: plain,
			ev: event(farmapi.RolloutHalted, farmapi.RolloutHaltedData{Rollout: 4, Repo: "fleet", Commit: commit, Kind: "push",
				Wave: 0, Host: "stolas", Reason: "failed", Detail: "stolas failed on /nix/store/x"}),
			wantTitle: "Rollout halted: fleet 0123456789ab", wantClick: "https://farm.example/rollouts/4",
		},
		{
			name: "build failure", cfg: plain, ev: targetEv(farmapi.TargetFailed, "malphas"),
			wantTitle: "Build failed: malphas", wantClick: "https://farm.example/api/targets/11/log",
			wantFailing: map[string]string{"build:fleet/main/malphas": "exit 1"},
		},
		{
			name: "build failure after a good build: what the good build changed", cfg: plain,
			ev:        failedAfter("stolas", &farmapi.LastGood{Target: 10, Commit: commit, Change: "linux 6.12.9 → 6.12.10"}),
			wantTitle: "Build failed: stolas", wantClick: "https://farm.example/api/targets/11/log",
			wantBody:    "stolas failed; last good build changed linux 6.12.9 -> 6.12.10\nstolas (x86_64-linux) failed on fleet main at 0123456789ab: exit 1",
			wantFailing: map[string]string{"build:fleet/main/stolas": "exit 1"},
		},
		{
			name: "build failure after a good build whose change is not known", cfg: plain,
			ev:        failedAfter("stolas", &farmapi.LastGood{Target: 10, Commit: commit}),
			wantTitle: "Build failed: stolas", wantClick: "https://farm.example/api/targets/11/log",
			wantBody:    "stolas (x86_64-linux) failed on fleet main at 0123456789ab: exit 1",
			wantFailing: map[string]string{"build:fleet/main/stolas": "exit 1"},
		},
		{
			name: "deploy, notify_deploy off", cfg: plain, ev: desiredDiff("stolas", 4),
		},
		{
			name: "deploy, notify_deploy on: what it changes on the host", cfg: deploys, ev: desiredDiff("stolas", 4),
			wantTitle: "Deploying: stolas", wantClick: "https://farm.example/targets/12",
			wantBody: "stolas: +2 ~14 -1 · 38 MiB\nlinux 6.12.9 -> 6.12.10, +16 more\n/nix/store/bbbb-stolas at 0123456789ab (manifest 4).",
		},
		{
			name: "deploy, notify_deploy on, no diff computed", cfg: deploys, ev: desired("stolas", 4),
			wantTitle: "Deploying: stolas", wantBody: "stolas gets /nix/store/bbbb-stolas at 0123456789ab (manifest 4).",
		},
		{
			name: "deploy, notify_deploy on, a host that is woken too", cfg: deploys, ev: desiredDiff("andras", 5),
			wantTitle: "Deploying: andras", wantClick: "https://farm.example/targets/12", wantBody: "andras: +2 ~14 -1 · 38 MiB",
			wantWake: &hostSeq{"andras", 5}, wantWaking: map[string]uint64{"andras": 5},
		},
		{
			name: "build recovery", cfg: plain, failing: map[string]string{"build:fleet/main/malphas": "exit 1"},
			ev: targetEv(farmapi.TargetCached, "malphas"), wantTitle: "Build recovered: malphas",
		},
		{
			name: "build success, nothing was failing", cfg: plain, ev: targetEv(farmapi.TargetBuilt, "malphas"),
		},
		{
			name: "evaluation failure", cfg: plain,
			ev:        event(farmapi.EvalFinished, farmapi.EvalData{Eval: 1, Repo: "fleet", Branch: "main", Commit: commit, State: "failed"}),
			wantTitle: "Evaluation failed: fleet main", wantFailing: map[string]string{"eval:fleet/main": "evaluation failed"},
		},
		{
			name: "evaluation with failed targets: the targets told already", cfg: plain,
			ev: event(farmapi.EvalFinished, farmapi.EvalData{Eval: 1, Repo: "fleet", Branch: "main", Commit: commit, State: "failed", Failed: 2}),
		},
		{
			name: "evaluation recovery", cfg: plain, failing: map[string]string{"eval:fleet/main": "evaluation failed"},
			ev:        event(farmapi.EvalFinished, farmapi.EvalData{Eval: 1, Repo: "fleet", Branch: "main", Commit: commit, State: "done"}),
			wantTitle: "Evaluation recovered: fleet main",
		},
		{
			name: "deploy rolled back", cfg: plain, ev: report("stolas", farmapi.ResultRolledBack, "health", 2),
			wantTitle: "Deploy rolled back: stolas", wantReported: &hostSeq{"stolas", 2},
			wantFailing: map[string]string{"deploy:stolas": "rolled back: health"},
		},
		{
			name: "deploy failed, the same failure again", cfg: plain, failing: map[string]string{"deploy:stolas": "failed: boom"},
			ev: report("stolas", farmapi.ResultFailed, "boom", 2), wantReported: &hostSeq{"stolas", 2},
			wantFailing: map[string]string{"deploy:stolas": "failed: boom"},
		},
		{
			name: "deploy recovery", cfg: plain, failing: map[string]string{"deploy:stolas": "failed: boom"},
			ev: report("stolas", farmapi.ResultUpToDate, "", 3), wantTitle: "Deploy recovered: stolas", wantReported: &hostSeq{"stolas", 3},
		},
		{
			name: "switched, success not asked for", cfg: plain,
			ev: report("stolas", farmapi.ResultSwitched, "", 3), wantReported: &hostSeq{"stolas", 3},
		},
		{
			name: "switched, success asked for", cfg: success,
			ev: report("stolas", farmapi.ResultSwitched, "", 3), wantTitle: "Deployed: stolas", wantReported: &hostSeq{"stolas", 3},
		},
		{
			name: "host desired: poke its agent", cfg: withAgent, pokeToken: "t", ev: desired("malphas", 7),
			wantWake: &hostSeq{"malphas", 7}, wantWaking: map[string]uint64{"malphas": 7},
		},
		{
			name: "host desired: an agent but no poke token", cfg: withAgent, ev: desired("malphas", 7),
		},
		{
			name: "host desired: wake it", cfg: withWoL, ev: desired("andras", 3),
			wantWake: &hostSeq{"andras", 3}, wantWaking: map[string]uint64{"andras": 3},
		},
		{
			name: "host desired: an older seq than the wake running", cfg: withWoL, waking: map[string]uint64{"andras": 5},
			ev: desired("andras", 3), wantWake: &hostSeq{"andras", 3}, wantWaking: map[string]uint64{"andras": 5},
		},
		{
			name: "host desired: neither poked nor woken", cfg: withWoL, ev: desired("stolas", 3),
		},
		{
			name: "a rollout passed over the host asleep: wake it again", cfg: withWoL,
			ev:       event(farmapi.HostWake, farmapi.HostWakeData{Host: "andras", Seq: 3, Rollout: 2}),
			wantWake: &hostSeq{"andras", 3}, wantWaking: map[string]uint64{"andras": 3},
		},
		{
			name: "a rollout passed over a host that is not woken", cfg: withWoL,
			ev: event(farmapi.HostWake, farmapi.HostWakeData{Host: "stolas", Seq: 3, Rollout: 2}),
		},
		{
			name: "the woken host reports: the wake ends", cfg: withWoL, waking: map[string]uint64{"andras": 3},
			ev: report("andras", farmapi.ResultSwitched, "", 3), wantReported: &hostSeq{"andras", 3},
		},
		{
			name: "the woken host reports an older seq: the wake goes on", cfg: withWoL, waking: map[string]uint64{"andras": 3},
			ev: report("andras", farmapi.ResultUpToDate, "", 2), wantReported: &hostSeq{"andras", 2}, wantWaking: map[string]uint64{"andras": 3},
		},
		{
			name: "cache collection failed", cfg: plain,
			ev:        event(farmapi.CacheCollectionFailed, farmapi.CollectionData{Collection: 4, Instance: "b1", Error: "list: connection refused"}),
			wantTitle: "Cache collection failed", wantFailing: map[string]string{"gc:cache": "list: connection refused"},
		},
		{
			name: "cache collection failed, the same failure again", cfg: plain, failing: map[string]string{"gc:cache": "list: connection refused"},
			ev:          event(farmapi.CacheCollectionFailed, farmapi.CollectionData{Collection: 5, Error: "list: connection refused"}),
			wantFailing: map[string]string{"gc:cache": "list: connection refused"},
		},
		{
			name: "cache collection failed otherwise", cfg: plain, failing: map[string]string{"gc:cache": "list: connection refused"},
			ev:        event(farmapi.CacheCollectionFailed, farmapi.CollectionData{Collection: 5, Error: "not the farm's cache"}),
			wantTitle: "Cache collection failed", wantFailing: map[string]string{"gc:cache": "not the farm's cache"},
		},
		{
			name: "cache collection recovery", cfg: plain, failing: map[string]string{"gc:cache": "list: connection refused"},
			ev:        event(farmapi.CacheCollected, farmapi.CollectionData{Collection: 6, FreedObjects: 3}),
			wantTitle: "Cache collection recovered",
		},
		{
			name: "cache collected, nothing was failing", cfg: plain,
			ev: event(farmapi.CacheCollected, farmapi.CollectionData{Collection: 6, FreedObjects: 3}),
		},
		{
			name: "an event type the notifier does not act on", cfg: plain, ev: event(farmapi.RemoteSynced, farmapi.RemoteSyncedData{Repo: "fleet"}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			r := newRules(cfg, "http://127.0.0.1:1", tt.pokeToken)
			before := state{Cursor: 8, Failing: map[string]string{}, Evals: maps.Clone(evals), Waking: map[string]uint64{}}
			maps.Copy(before.Failing, tt.failing)
			maps.Copy(before.Waking, tt.waking)
			kept := before.clone()

			after, d, err := decide(r, before, tt.ev)
			if err != nil {
				t.Fatalf("decide: %v", err)
			}
			if !reflect.DeepEqual(before, kept) {
				t.Errorf("decide modified the state handed in: %+v, was %+v", before, kept)
			}
			var title, click, body string
			if d.msg != nil {
				title, click, body = d.msg.Title, d.msg.Click, d.msg.Body
			}
			if !strings.HasPrefix(body, tt.wantBody) {
				t.Errorf("body %q, want it to start with %q", body, tt.wantBody)
			}
			if title != tt.wantTitle || click != tt.wantClick {
				t.Errorf("notification %q (click %q), want %q (click %q)", title, click, tt.wantTitle, tt.wantClick)
			}
			if !reflect.DeepEqual(d.wake, tt.wantWake) {
				t.Errorf("wake %+v, want %+v", d.wake, tt.wantWake)
			}
			if !reflect.DeepEqual(d.reported, tt.wantReported) {
				t.Errorf("reported %+v, want %+v", d.reported, tt.wantReported)
			}
			if want := orEmpty(tt.wantFailing); !maps.Equal(after.Failing, want) {
				t.Errorf("failing after: %v, want %v", after.Failing, want)
			}
			if want := orEmpty(tt.wantWaking); !maps.Equal(after.Waking, want) {
				t.Errorf("waking after: %v, want %v", after.Waking, want)
			}
		})
	}
}

// An event whose data does not decode changes nothing and says why.
func TestDecideUnreadable(t *testing.T) {
	s := state{Failing: map[string]string{"deploy:a": "failed: x"}, Evals: map[int64]evalInfo{}, Waking: map[string]uint64{}}
	for _, typ := range []farmapi.EventType{farmapi.EvalStarted, farmapi.EvalFinished, farmapi.TargetFailed, farmapi.TargetBuilt, farmapi.HostDesired, farmapi.HostReport} {
		after, d, err := decide(rules{}, s, Event{ID: 3, Type: typ, Data: []byte(`{"host":1,"eval":"x"}`)})
		if err == nil {
			t.Errorf("%s: decide accepted malformed data", typ)
		}
		if d.msg != nil || d.wake != nil || d.reported != nil || !reflect.DeepEqual(after, s) {
			t.Errorf("%s: malformed data decided %+v, state %+v", typ, d, after)
		}
	}
}

// A collection event whose data does not decode changes nothing either.
func TestDecideUnreadableCollection(t *testing.T) {
	s := state{Failing: map[string]string{"gc:cache": "x"}, Evals: map[int64]evalInfo{}, Waking: map[string]uint64{}}
	for _, typ := range []farmapi.EventType{farmapi.CacheCollected, farmapi.CacheCollectionFailed} {
		after, d, err := decide(rules{}, s, Event{ID: 3, Type: typ, Data: []byte(`{"collection":"x","error":1}`)})
		if err == nil {
			t.Errorf("%s: decide accepted malformed data", typ)
		}
		if d.msg != nil || !reflect.DeepEqual(after, s) {
			t.Errorf("%s: malformed data decided %+v, state %+v", typ, d, after)
		}
	}
}

func orEmpty[V any](m map[string]V) map[string]V {
	if m == nil {
		return map[string]V{}
	}
	return m
}

// TestRolloutHaltToldOnce: a halt is the one notification of the halting
// host's failed report of that manifest; the failure is still recorded,
// so the host's next good report is a recovery, while other hosts' and
// other manifests' failures are told of as before.
func TestRolloutHaltToldOnce(t *testing.T) {
	const commit = "0123456789abcdef0123456789abcdef01234567"
	event := func(typ farmapi.EventType, data any) Event {
		b, err := json.Marshal(data)
		if err != nil {
			t.Fatal(err)
		}
		return Event{ID: 9, Type: typ, Data: b}
	}
	halt := func(host string, seq uint64) Event {
		return event(farmapi.RolloutHalted, farmapi.RolloutHaltedData{Rollout: 4, Repo: "fleet", Commit: commit, Kind: "push",
			Wave: 0, Host: host, Reason: "failed", Detail: host + " failed", Seq: seq})
	}
	report := func(host string, r farmapi.Result, reason string, seq uint64) Event {
		return event(farmapi.HostReport, farmapi.HostReportData{Host: host, Report: farmapi.Report{Current: "/nix/store/aaaa-" + host, Result: r, Reason: reason, Seq: seq}})
	}
	tests := []struct {
		name       string
		events     []Event
		wantTitles []string // one per event, "" for none
	}{
		{
			name: "the halting report is not told again, its recovery is",
			events: []Event{
				halt("stolas", 5),
				report("stolas", farmapi.ResultFailed, "health check failed", 5),
				report("stolas", farmapi.ResultFailed, "health check failed", 5),
				report("stolas", farmapi.ResultSwitched, "", 6),
			},
			wantTitles: []string{"Rollout halted: fleet 0123456789ab", "", "", "Deploy recovered: stolas"},
		},
		{
			name: "a rolled-back halting report",
			events: []Event{
				halt("stolas", 5),
				report("stolas", farmapi.ResultRolledBack, "unit failed", 5),
			},
			wantTitles: []string{"Rollout halted: fleet 0123456789ab", ""},
		},
		{
			name: "another host's failure is told",
			events: []Event{
				halt("stolas", 5),
				report("andras", farmapi.ResultFailed, "disk full", 5),
			},
			wantTitles: []string{"Rollout halted: fleet 0123456789ab", "Deploy failed: andras"},
		},
		{
			name: "a failure on a later manifest is told",
			events: []Event{
				halt("stolas", 5),
				report("stolas", farmapi.ResultFailed, "health check failed", 5),
				report("stolas", farmapi.ResultFailed, "out of space", 7),
			},
			wantTitles: []string{"Rollout halted: fleet 0123456789ab", "", "Deploy failed: stolas"},
		},
		{
			name: "a second halt on the next manifest is told, its report is not",
			events: []Event{
				halt("stolas", 5),
				report("stolas", farmapi.ResultFailed, "health check failed", 5),
				halt("stolas", 7),
				report("stolas", farmapi.ResultFailed, "out of space", 7),
			},
			wantTitles: []string{"Rollout halted: fleet 0123456789ab", "", "Rollout halted: fleet 0123456789ab", ""},
		},
		{
			name: "without a halt the failure is told",
			events: []Event{
				report("stolas", farmapi.ResultFailed, "health check failed", 5),
			},
			wantTitles: []string{"Deploy failed: stolas"},
		},
	}
	r := newRules(Config{PublicURL: "https://farm.example"}, "", "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := state{Failing: map[string]string{}, Evals: map[int64]evalInfo{}, Waking: map[string]uint64{}}
			for i, ev := range tt.events {
				next, d, err := decide(r, s, ev)
				if err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
				got := ""
				if d.msg != nil {
					got = d.msg.Title
				}
				if got != tt.wantTitles[i] {
					t.Errorf("event %d (%s): title = %q, want %q", i, ev.Type, got, tt.wantTitles[i])
				}
				s = next
			}
		})
	}
}
