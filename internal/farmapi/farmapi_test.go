package farmapi_test

import (
	"encoding/json"
	"testing"

	"github.com/homelab-farm/farm/internal/farmapi"
)

func TestResultValid(t *testing.T) {
	for _, r := range []farmapi.Result{farmapi.ResultSwitched, farmapi.ResultUpToDate, farmapi.ResultRolledBack, farmapi.ResultFailed} {
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
