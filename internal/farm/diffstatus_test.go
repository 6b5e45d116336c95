package farm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/closurediff"
	"github.com/homelab-farm/farm/internal/farm/farmtest"
	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/state"
)

// checkStatusesOfCommit checks, for an evaluation the pipeline ran with
// public_url publicURL, the statuses of commit on the fake forge: every
// link is a dashboard page (the evaluation's for farm/eval, the target's
// for a host), the overall status is the last one, and each host built
// or cached carries in its description the StatusLine of the closure diff
// that GET /api/targets/{id}/diff serves.
func checkStatusesOfCommit(t *testing.T, base, publicURL string, calls func() []farmtest.StatusCall, commit string, ev farmtest.EvaluationView) {
	t.Helper()
	var mine []farmtest.StatusCall
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		mine = mine[:0]
		for _, c := range calls() {
			if strings.HasSuffix(c.Path, "/statuses/"+commit) {
				mine = append(mine, c)
			}
		}
		if n := len(mine); n > 0 && mine[n-1].Body["context"] == "farm/eval" && mine[n-1].Body["state"] != "pending" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no final farm/eval status for %s: %+v", commit, mine)
		}
	}
	evalPage := fmt.Sprintf("%s/evaluations/%d", publicURL, ev.ID)
	if last := mine[len(mine)-1]; last.Body["target_url"] != evalPage {
		t.Errorf("final farm/eval status %+v, want it linking %s", last.Body, evalPage)
	}
	byHost := farmtest.ByHost(ev)
	linked := false
	for _, c := range mine {
		ctx, url := c.Body["context"], c.Body["target_url"]
		host, isHost := strings.CutPrefix(ctx, "farm/host/")
		switch {
		case isHost && url != fmt.Sprintf("%s/targets/%d", publicURL, byHost[host].ID):
			t.Errorf("status %s links %q, want the target's page", ctx, url)
		case ctx == "farm/eval" && url != "" && url != evalPage:
			t.Errorf("farm/eval status %+v links elsewhere than %s", c.Body, evalPage)
		case ctx == "farm/eval" && url == "" && linked:
			t.Errorf("farm/eval status without a link after one with: %+v", c.Body)
		}
		linked = linked || (ctx == "farm/eval" && url != "")
	}

	checked := 0
	for _, tg := range ev.Targets {
		if tg.State != state.TargetBuilt && tg.State != state.TargetCached {
			continue
		}
		var raw struct{ Current, Previous json.RawMessage }
		if code := farmtest.GetJSON(t, fmt.Sprintf("%s/api/targets/%d/diff", base, tg.ID), &raw); code != http.StatusOK {
			t.Fatalf("GET /api/targets/%d/diff = %d", tg.ID, code)
		}
		// The status tells of the diff against what the host runs, or
		// failing that against the previous build (a push, not a pull
		// request).
		var d closurediff.Diff
		found := false
		for _, r := range []json.RawMessage{raw.Current, raw.Previous} {
			var probe struct{ Error string }
			if len(r) == 0 || string(r) == "null" || json.Unmarshal(r, &probe) != nil || probe.Error != "" {
				continue
			}
			if err := json.Unmarshal(r, &d); err != nil {
				t.Fatal(err)
			}
			found = true
			break
		}
		if !found {
			t.Errorf("%s (%s): no closure diff recorded: %s / %s", tg.Host, tg.State, raw.Current, raw.Previous)
			continue
		}
		want := tg.State + ": " + d.StatusLine(forge.MaxDescription-len(tg.State)-len(": "))
		var got string
		for _, c := range mine {
			if c.Body["context"] == "farm/host/"+tg.Host {
				got = c.Body["description"]
			}
		}
		if got != want {
			t.Errorf("status description of %s = %q, want %q", tg.Host, got, want)
		}
		checked++
	}
	if checked == 0 {
		t.Errorf("no host built or cached at %s", commit)
	}
}
