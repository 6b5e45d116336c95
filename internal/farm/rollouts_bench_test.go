package farm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/farm/farmtest"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/server/servertest"
	"github.com/homelab-farm/farm/internal/state"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
)

// benchHosts is the fleet of BenchmarkRolloutWaves: one canary and the
// rest in the second wave.
const benchHosts = 6

// rolloutFleet is a served farm whose fleet has benchHosts hosts, in one
// wave or in two (the first host alone in wave 0), with both of its
// versions built already, every host switched to the first.
type rolloutFleet struct {
	f     *farmtest.Setup
	fm    *Farm
	base  string
	hosts map[string]fleettest.Host
	n     int // pushes so far
}

func newRolloutFleet(b *testing.B, waves int) *rolloutFleet {
	hosts := map[string]fleettest.Host{}
	for i := range benchHosts {
		h := fleettest.Host{System: "x86_64-linux", Version: "a"}
		if waves > 1 {
			h.Wave = fleettest.WaveOf(min(i, 1))
		}
		hosts[fmt.Sprintf("h%d", i)] = h
	}
	f := farmtest.New(b, hosts)
	f.SetNixEnv(b)
	for name := range hosts {
		writeToken(b, filepath.Join(f.Dir, "agents"), name, name+"-token\n")
	}
	base, fm, _ := start(b, f.Config(b), Options{})
	r := &rolloutFleet{f: f, fm: fm, base: base, hosts: hosts}
	r.push(b, "b") // builds version b
	r.push(b, "a") // builds version a
	return r
}

// push commits the fleet at version v (a new commit), pushes it and acts
// as every agent: each host reports switched as soon as it is offered the
// commit. It returns once every host switched to it.
func (r *rolloutFleet) push(b *testing.B, v string) time.Duration {
	b.Helper()
	ctx := context.Background()
	for name, h := range r.hosts {
		h.Version = v
		r.hosts[name] = h
	}
	r.n++
	commit := r.f.Repo.Commit(b, r.hosts, fmt.Sprintf("push %d: %s", r.n, v))
	begin := time.Now()
	status, body := servertest.Post(b, r.base, farmtest.PushHook(b, commit, fmt.Sprintf("d-%d", r.n)))
	if status != http.StatusAccepted {
		b.Fatalf("webhook: %d %s", status, body)
	}
	reported := map[string]bool{}
	deadline := time.Now().Add(5 * time.Minute)
	for len(reported) < len(r.hosts) {
		if time.Now().After(deadline) {
			b.Fatalf("push %d: only %v switched", r.n, reported)
		}
		for name := range r.hosts {
			if reported[name] {
				continue
			}
			h, err := r.fm.state.Host(ctx, name)
			if err != nil && !errors.Is(err, state.ErrNotFound) {
				b.Fatal(err)
			}
			if h.DesiredCommit != commit {
				continue
			}
			rep, _ := json.Marshal(farmapi.Report{Current: h.DesiredPath, Result: farmapi.ResultSwitched, Seq: h.DesiredSeq})
			if code, out := servertest.Request(b, http.MethodPost, r.base+"/api/hosts/"+name+"/report", name+"-token", string(rep)); code != http.StatusNoContent {
				b.Fatalf("report of %s: %d %s", name, code, out)
			}
			reported[name] = true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(begin)
}

// BenchmarkRolloutWaves pushes a commit whose closures are all cached to
// a fleet of benchHosts hosts, every host switching as soon as it is
// offered, in one wave and in two (a canary, then the rest), side by side
// in one run; it reports each one's time from the push until every host
// switched, and two waves as a ratio of one (goal: under 2).
func BenchmarkRolloutWaves(b *testing.B) {
	one, two := newRolloutFleet(b, 1), newRolloutFleet(b, 2)
	var tOne, tTwo time.Duration
	versions := []string{"b", "a"}
	i := 0
	for b.Loop() {
		v := versions[i%2]
		i++
		tOne += one.push(b, v)
		tTwo += two.push(b, v)
	}
	n := float64(i)
	b.ReportMetric(tOne.Seconds()/n, "s-one-wave")
	b.ReportMetric(tTwo.Seconds()/n, "s-two-waves")
	b.ReportMetric(tTwo.Seconds()/tOne.Seconds(), "two/one")
}
