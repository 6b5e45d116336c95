package farmapi_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/farmapi"
)

func TestResultValid(t *testing.T) {
	for _, r := range []farmapi.Result{farmapi.ResultSwitched, farmapi.ResultUpToDate, farmapi.ResultRolledBack, farmapi.ResultFailed, farmapi.ResultInstalled, farmapi.ResultWaiting} {
		if !r.Valid() {
			t.Errorf("%q.Valid() = false", r)
		}
	}
	for _, r := range []farmapi.Result{"", "ok", "Switched", "switched\n"} {
		if r.Valid() {
			t.Errorf("%q.Valid() = true", r)
		}
	}
}

// The host report event is the agent's report plus the host, flat.
func TestHostReportDataShape(t *testing.T) {
	b, err := json.Marshal(farmapi.HostReportData{Host: "h", Report: farmapi.Report{Current: "/nix/store/x", Result: farmapi.ResultSwitched, Seq: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"host":"h","current":"/nix/store/x","result":"switched","seq":3}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// The payloads keep the fields the builder wrote before they were typed:
// every field present, zeros included, except State, Failed and Hosts,
// which only a finished evaluation carries.
func TestEventPayloadShapes(t *testing.T) {
	for _, tc := range []struct {
		name string
		data any
		want string
	}{
		{"eval started", farmapi.EvalData{Eval: 7, Repo: "homelab", Branch: "main", Commit: "c1"},
			`{"eval":7,"repo":"homelab","branch":"main","commit":"c1","resumed":false}`},
		{"eval resumed", farmapi.EvalData{Eval: 7, Repo: "homelab", Branch: "main", Commit: "c1", Resumed: true},
			`{"eval":7,"repo":"homelab","branch":"main","commit":"c1","resumed":true}`},
		{"eval finished clean", farmapi.EvalData{Eval: 7, Repo: "homelab", Branch: "main", Commit: "c1", State: "done", Hosts: 3},
			`{"eval":7,"repo":"homelab","branch":"main","commit":"c1","resumed":false,"state":"done","failed":0,"hosts":3}`},
		{"eval finished failed", farmapi.EvalData{Eval: 7, Repo: "homelab", Branch: "main", Commit: "c1", State: "failed", Failed: 1, Hosts: 1},
			`{"eval":7,"repo":"homelab","branch":"main","commit":"c1","resumed":false,"state":"failed","failed":1,"hosts":1}`},
		{"eval finished empty fleet", farmapi.EvalData{Eval: 7, Repo: "homelab", Branch: "main", Commit: "c1", State: "done"},
			`{"eval":7,"repo":"homelab","branch":"main","commit":"c1","resumed":false,"state":"done","failed":0,"hosts":0}`},
		{"target failed in evaluation", farmapi.TargetData{Eval: 7, Target: 9, Host: "alpha", State: "failed", Reason: "evaluation failed: x"},
			`{"eval":7,"target":9,"host":"alpha","system":"","out_path":"","state":"failed","reason":"evaluation failed: x"}`},
		{"target cached", farmapi.TargetData{Eval: 7, Target: 9, Host: "alpha", System: "x86_64-linux", OutPath: "/nix/store/x", State: "cached"},
			`{"eval":7,"target":9,"host":"alpha","system":"x86_64-linux","out_path":"/nix/store/x","state":"cached","reason":""}`},
		{"host desired", farmapi.HostDesiredData{Host: "alpha", StorePath: "/nix/store/x", Commit: "c1", Seq: 4},
			`{"host":"alpha","store_path":"/nix/store/x","commit":"c1","seq":4}`},
		{"rollout halted", farmapi.RolloutHaltedData{Rollout: 3, Repo: "homelab", Commit: "c1", Kind: "push", Wave: 0, Host: "stolas", Reason: "failed", Detail: "stolas failed on /nix/store/x"},
			`{"rollout":3,"repo":"homelab","commit":"c1","kind":"push","wave":0,"host":"stolas","reason":"failed","detail":"stolas failed on /nix/store/x"}`},
		{"host wake", farmapi.HostWakeData{Host: "andras", Seq: 9, Rollout: 3},
			`{"host":"andras","seq":9,"rollout":3}`},
		{"rollout wave", farmapi.RolloutData{Rollout: 3, Repo: "homelab", Commit: "c1", Kind: "push", Status: "progressing", Wave: 1, Hosts: []string{"andras", "bael"}},
			`{"rollout":3,"repo":"homelab","commit":"c1","kind":"push","status":"progressing","wave":1,"hosts":["andras","bael"]}`},
		{"cache collected", farmapi.CollectionData{Collection: 3, Instance: "b1", Started: time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC), DurationMS: 1500,
			FreedObjects: 2, FreedBytes: 300, KeptPaths: 10, CacheObjects: 20, CacheBytes: 4000},
			`{"collection":3,"instance":"b1","started":"2026-11-01T03:00:00Z","duration_ms":1500,"freed_objects":2,"freed_bytes":300,"kept_paths":10,"cache_objects":20,"cache_bytes":4000}`},
		{"cache collection failed", farmapi.CollectionData{Collection: 4, Started: time.Date(2026, 11, 2, 3, 0, 0, 0, time.UTC), Error: "list: refused"},
			`{"collection":4,"started":"2026-11-02T03:00:00Z","duration_ms":0,"freed_objects":0,"freed_bytes":0,"kept_paths":0,"cache_objects":0,"cache_bytes":0,"error":"list: refused"}`},
		{"remote synced", farmapi.RemoteSyncedData{Repo: "homelab", Remote: "https://example.invalid/r.git", Branch: "main", Commit: "c1"},
			`{"repo":"homelab","remote":"https://example.invalid/r.git","branch":"main","commit":"c1"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// A finished evaluation decodes back into the same EvalData.
func TestEvalDataRoundTrip(t *testing.T) {
	in := farmapi.EvalData{Eval: 7, Repo: "homelab", Branch: "main", Commit: "c1", Resumed: true, State: "failed", Failed: 2, Hosts: 5}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out farmapi.EvalData
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Errorf("round trip: got %+v, want %+v", out, in)
	}
}
