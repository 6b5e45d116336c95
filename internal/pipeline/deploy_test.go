package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/state"
)

// failingSigner is a signer that is down.
type failingSigner struct{}

func (failingSigner) Sign(context.Context, deploy.Manifest) (deploy.Signed, error) {
	return deploy.Signed{}, errors.New("signer unreachable")
}

// TestCurrentManifestRenews drives the builder's clock through a
// manifest's life: served as stored while fresh, renewed (same seq, path,
// commit; a later expiry) once less than half its TTL is left, never
// renewed over a newer deploy, and refused once expired when the signer is
// down.
func TestCurrentManifestRenews(t *testing.T) {
	ctx := context.Background()
	st, err := state.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, _ := cache.GenerateKey("farm-test-deploy-1")
	trusted := []cache.PublicKey{key.Public()}
	clock := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	p := &pipeline.Pipeline{State: st, Signer: deploy.KeySigner{Key: key}, ManifestTTL: 72 * time.Hour, Now: func() time.Time { return clock }}
	const path = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-alpha"

	first, err := deploy.Sign(deploy.Manifest{Host: "alpha", StorePath: path, Commit: "c1", Seq: 4,
		IssuedAt: clock, Expires: clock.Add(72 * time.Hour), Cache: "http://b/nix-cache"}, key)
	if err != nil {
		t.Fatal(err)
	}
	firstBody, _ := json.Marshal(first)
	if err := st.SetDesired(ctx, "alpha", path, "c1", 4, firstBody); err != nil {
		t.Fatal(err)
	}
	serve := func() []byte {
		t.Helper()
		h, err := st.Host(ctx, "alpha")
		if err != nil {
			t.Fatal(err)
		}
		body, err := p.CurrentManifest(ctx, h)
		if err != nil {
			t.Fatalf("CurrentManifest: %v", err)
		}
		return body
	}
	verify := func(body []byte) deploy.Manifest {
		t.Helper()
		var s deploy.Signed
		if err := json.Unmarshal(body, &s); err != nil {
			t.Fatal(err)
		}
		m, err := deploy.Verify(s, trusted, "alpha", clock, 0)
		if err != nil {
			t.Fatalf("served manifest does not verify: %v", err)
		}
		return m
	}

	clock = clock.Add(35 * time.Hour) // 37 h left: not yet
	if got := serve(); string(got) != string(firstBody) {
		t.Fatalf("fresh manifest was re-signed: %s", got)
	}

	clock = clock.Add(2 * time.Hour) // 35 h left: renewed
	m := verify(serve())
	if m.Seq != 4 || m.StorePath != path || m.Commit != "c1" || m.Cache != "http://b/nix-cache" || !m.Expires.Equal(clock.Add(72*time.Hour)) {
		t.Fatalf("renewed manifest = %+v, want seq 4, same path, commit and cache, expiring %s", m, clock.Add(72*time.Hour))
	}
	if h, _ := st.Host(ctx, "alpha"); string(h.Manifest) == string(firstBody) {
		t.Errorf("the renewal was not stored")
	}

	// Down signer: the stored manifest is served while valid, then 503.
	p.Signer = failingSigner{}
	clock = clock.Add(50 * time.Hour) // 22 h left
	if m := verify(serve()); m.Seq != 4 {
		t.Errorf("with the signer down, served seq %d, want the stored 4", m.Seq)
	}
	clock = clock.Add(23 * time.Hour) // expired
	h, _ := st.Host(ctx, "alpha")
	if _, err := p.CurrentManifest(ctx, h); !errors.Is(err, pipeline.ErrManifestExpired) {
		t.Fatalf("expired manifest with the signer down: %v, want ErrManifestExpired", err)
	}

	// A renewal racing a newer deploy does not replace it.
	p.Signer = deploy.KeySigner{Key: key}
	stale, _ := st.Host(ctx, "alpha") // read before the newer deploy
	newer, _ := deploy.Sign(deploy.Manifest{Host: "alpha", StorePath: path, Commit: "c2", Seq: 9,
		IssuedAt: clock, Expires: clock.Add(72 * time.Hour)}, key)
	newerBody, _ := json.Marshal(newer)
	if err := st.SetDesired(ctx, "alpha", path, "c2", 9, newerBody); err != nil {
		t.Fatal(err)
	}
	got, err := p.CurrentManifest(ctx, stale)
	if err != nil {
		t.Fatal(err)
	}
	if m := verify(got); m.Seq != 9 {
		t.Errorf("renewing a stale read served seq %d, want the newer 9", m.Seq)
	}
	if h, _ := st.Host(ctx, "alpha"); string(h.Manifest) != string(newerBody) || h.DesiredSeq != 9 {
		t.Errorf("the renewal replaced the newer manifest: seq %d", h.DesiredSeq)
	}
}

// TestSupersededPushesNeverRun: of pushes queued to the deploy branch
// before a worker gets to them only the newest runs, and a push that
// arrives after a newer one (the newer one started from it) never runs.
func TestSupersededPushesNeverRun(t *testing.T) {
	for _, tc := range []struct {
		name  string
		order []int // commits (1..3, each the parent of the next) in the order they are pushed
	}{
		{"newer pushes supersede queued ones", []int{1, 2, 3}},
		{"an older push arrives late", []int{3, 2}},
		{"the oldest arrives last", []int{2, 3, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			commits := []string{h.commit(t, map[string]fleetHost{"alpha": {Version: "0"}}, "base")}
			for v := 1; v <= 3; v++ {
				commits = append(commits, h.commit(t, map[string]fleetHost{"alpha": {Version: string(rune('0' + v))}}, "v"))
			}
			for _, i := range tc.order {
				h.enqueue(t, commits[i], commits[i-1])
			}
			if ran := h.drain(t); !slices.Equal(ran, []string{commits[3]}) {
				t.Errorf("ran %v, want just the newest %s", short(ran), commits[3][:7])
			}
			if got := h.evaluatedCommits(); !slices.Equal(got, []string{commits[3]}) {
				t.Errorf("evaluated %v, want just the newest", short(got))
			}
			if a := h.host(t, "alpha"); a.DesiredCommit != commits[3] || a.DesiredSeq != 1 {
				t.Errorf("alpha wants %.7s seq %d, want %.7s seq 1", a.DesiredCommit, a.DesiredSeq, commits[3])
			}
		})
	}
}

// TestLateCommitNotDeployed: evaluations of one branch can finish in any
// order (two workers, a retried job). A commit that is an ancestor of the
// one a host already wants is never deployed to it, and draws no seq; a
// commit of another history (a force push) is deployed like any newer one.
func TestLateCommitNotDeployed(t *testing.T) {
	for _, tc := range []struct {
		name      string
		order     []string // commits, finishing in this order
		want      string   // the commit alpha wants in the end
		manifests int      // manifests signed for alpha
	}{
		{"in order", []string{"c1", "c2", "c3"}, "c3", 3},
		{"older after newer", []string{"c2", "c1"}, "c2", 1},
		{"oldest after newest", []string{"c3", "c1", "c2"}, "c3", 1},
		{"the same commit again", []string{"c2", "c2"}, "c2", 1},
		{"another history after", []string{"c2", "side"}, "side", 2},
		{"back from another history", []string{"side", "c3"}, "c3", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			commits := map[string]string{}
			commits["c1"] = h.commit(t, map[string]fleetHost{"alpha": {Version: "1"}}, "c1")
			commits["c2"] = h.commit(t, map[string]fleetHost{"alpha": {Version: "2"}}, "c2")
			commits["c3"] = h.commit(t, map[string]fleetHost{"alpha": {Version: "3"}}, "c3")
			h.git(t, "checkout", "-q", "-b", "side", commits["c1"])
			commits["side"] = h.commit(t, map[string]fleetHost{"alpha": {Version: "side"}}, "side")

			for _, c := range tc.order {
				h.process(t, h.job(commits[c]))
			}
			a := h.host(t, "alpha")
			if a.DesiredCommit != commits[tc.want] {
				t.Errorf("alpha wants %.7s, want %s (%.7s)", a.DesiredCommit, tc.want, commits[tc.want])
			}
			if want := storePath("alpha", strings.TrimPrefix(tc.want, "c"), "out"); a.DesiredPath != want {
				t.Errorf("alpha desired path %s, want %s", a.DesiredPath, want)
			}
			seqs := desiredSeqs(t, h)["alpha"]
			if len(seqs) != tc.manifests {
				t.Errorf("alpha got %d manifests (seqs %v), want %d", len(seqs), seqs, tc.manifests)
			}
			if top, _ := h.st.Seq(context.Background()); top != uint64(tc.manifests) {
				t.Errorf("seq counter at %d, want %d: a skipped deploy drew a seq", top, tc.manifests)
			}
			if m := h.manifest(t, "alpha"); m.Seq != a.DesiredSeq || m.Commit != a.DesiredCommit || m.StorePath != a.DesiredPath {
				t.Errorf("manifest %+v does not match the desired state %+v", m, a)
			}
		})
	}
}

// TestDeployOrder: manifests are signed only once every host of the
// evaluation is built, pushed or failed, in every lane; each host's seq
// grows with each new closure, seqs are never shared between hosts, and a
// host whose closure did not change gets no new manifest.
func TestDeployOrder(t *testing.T) {
	h := newHarness(t)
	h.p.LaneJobs = 1
	h.nix.realise = func(ctx context.Context, drv string, opts nix.BuildOptions) ([]string, error) {
		if strings.HasSuffix(drv, "-pi.drv") {
			time.Sleep(100 * time.Millisecond) // pi's lane finishes last
		}
		return h.realise(ctx, drv, opts)
	}
	fleet := map[string]fleetHost{
		"alpha": {Version: "1"}, "beta": {Version: "1"}, "gamma": {Version: "1", Fail: true},
		"pi": {System: "aarch64-linux", Version: "1"},
	}
	pushes := []map[string]string{ // host -> version, on top of the fleet before
		{},
		{"alpha": "2"},
		{"alpha": "3", "beta": "2", "gamma": "2"},
		{"pi": "2"},
	}
	for n, change := range pushes {
		for host, v := range change {
			fh := fleet[host]
			fh.Version, fh.Fail = v, false
			fleet[host] = fh
		}
		h.process(t, h.job(h.commit(t, fleet, fmt.Sprintf("push %d", n))))
		lastTarget, firstDesired := int64(0), int64(math.MaxInt64)
		for _, ev := range eventsOfLastEval(t, h) {
			switch farmapi.EventType(ev.Type) {
			case farmapi.TargetBuilt, farmapi.TargetCached, farmapi.TargetFailed, farmapi.TargetSkipped:
				lastTarget = max(lastTarget, ev.ID)
			case farmapi.HostDesired:
				firstDesired = min(firstDesired, ev.ID)
			}
		}
		if firstDesired < lastTarget {
			t.Errorf("push %d: a manifest (event %d) before the last target finished (event %d)", n, firstDesired, lastTarget)
		}
	}

	seqs := desiredSeqs(t, h)
	want := map[string]int{"alpha": 3, "beta": 2, "gamma": 1, "pi": 2}
	seen := map[uint64]string{}
	for host, n := range want {
		if len(seqs[host]) != n {
			t.Errorf("%s got %d manifests (seqs %v), want %d", host, len(seqs[host]), seqs[host], n)
		}
		for i, s := range seqs[host] {
			if i > 0 && s <= seqs[host][i-1] {
				t.Errorf("%s seqs %v do not grow", host, seqs[host])
			}
			if other, ok := seen[s]; ok {
				t.Errorf("seq %d given to %s and %s", s, other, host)
			}
			seen[s] = host
		}
		if m := h.manifest(t, host); m.Seq != seqs[host][len(seqs[host])-1] {
			t.Errorf("%s's manifest has seq %d, want its last %d", host, m.Seq, seqs[host][len(seqs[host])-1])
		}
	}
	if g := h.host(t, "gamma"); g.DesiredPath != storePath("gamma", "2", "out") {
		t.Errorf("gamma wants %s; its failed build was deployed, or its fixed one not", g.DesiredPath)
	}
}

// TestSignerDownFailsJob: with the signer down, the job fails (the queue
// retries it) and no host wants a closure without a signed manifest; the
// retry deploys every host.
func TestSignerDownFailsJob(t *testing.T) {
	h := newHarness(t)
	j := h.job(h.commit(t, map[string]fleetHost{"alpha": {Version: "1"}, "beta": {Version: "1"}}, "fleet"))
	h.p.Signer = failingSigner{}
	if _, err := h.p.Process(context.Background(), j); err == nil || !strings.Contains(err.Error(), "signer unreachable") {
		t.Fatalf("Process with the signer down = %v, want its error", err)
	}
	for _, host := range []string{"alpha", "beta"} {
		if got := h.host(t, host); got.DesiredPath != "" || len(got.Manifest) != 0 {
			t.Errorf("%s = %+v with the signer down, want nothing recorded", host, got)
		}
	}
	h.p.Signer = deploy.KeySigner{Key: h.key}
	h.process(t, j)
	for _, host := range []string{"alpha", "beta"} {
		if m := h.manifest(t, host); m.Commit != j.Commit {
			t.Errorf("%s manifest for %.7s, want %.7s", host, m.Commit, j.Commit)
		}
	}
}

// desiredSeqs returns the seqs of the host.desired events per host, in order.
func desiredSeqs(t *testing.T, h *harness) map[string][]uint64 {
	t.Helper()
	out := map[string][]uint64{}
	for _, ev := range h.events(t) {
		if ev.Type != string(farmapi.HostDesired) {
			continue
		}
		var d farmapi.HostDesiredData
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		out[d.Host] = append(out[d.Host], d.Seq)
	}
	return out
}

// eventsOfLastEval returns the events since the last evaluation.started.
func eventsOfLastEval(t *testing.T, h *harness) []state.Event {
	t.Helper()
	evs := h.events(t)
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Type == string(farmapi.EvalStarted) {
			return evs[i:]
		}
	}
	t.Fatal("no evaluation.started event")
	return nil
}
