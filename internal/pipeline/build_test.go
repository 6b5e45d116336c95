package pipeline_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/state"
)

// TestBuildRetries: a build that failed because a builder went away is
// retried BuildRetries times; one that failed on its own is not.
func TestBuildRetries(t *testing.T) {
	nixErr := func(stderr string) error {
		return &nix.Error{Cmd: "nix-store --realise", Stderr: stderr, Err: errors.New("exit status 1")}
	}
	var (
		permanent  = nixErr("building '/nix/store/x.drv'...\nerror: builder for '/nix/store/x.drv' failed with exit code 1\n")
		refused    = nixErr("error: cannot connect to 'ssh-ng://pi': Connection refused\n")
		reset      = nixErr("error: unexpected end-of-file\nConnection reset by peer\n")
		diskFull   = nixErr("error: writing to file: No space left on device\n")
		outsideNix = errors.New("start nix-store: no such file or directory")
	)
	for _, tc := range []struct {
		name       string
		retries    int     // Pipeline.BuildRetries
		fails      []error // the results of the attempts before one succeeds
		wantCalls  int
		wantState  string
		wantReason string // in the target's reason
	}{
		{"success", 0, nil, 1, state.TargetBuilt, "pushed 0 paths"},
		{"permanent failure is not retried", 0, []error{permanent}, 1, state.TargetFailed, "build failed: nix-store --realise: builder for '/nix/store/x.drv' failed with exit code 1"},
		{"builder gone passes on retry", 0, []error{refused}, 2, state.TargetBuilt, "pushed 0 paths"},
		{"connection reset passes on retry", 0, []error{reset}, 2, state.TargetBuilt, "pushed"},
		{"disk full passes on retry", 0, []error{diskFull}, 2, state.TargetBuilt, "pushed"},
		{"an error outside Nix is retried", 0, []error{outsideNix}, 2, state.TargetBuilt, "pushed"},
		{"builder gone every time", 0, []error{refused, refused, refused}, 2, state.TargetFailed, "build failed: nix-store --realise: cannot connect to 'ssh-ng://pi': Connection refused"},
		{"three retries", 3, []error{refused, reset, refused}, 4, state.TargetBuilt, "pushed"},
		{"three retries not enough", 3, []error{refused, reset, refused, refused, refused}, 4, state.TargetFailed, "Connection refused"},
		{"retries off", -1, []error{refused}, 1, state.TargetFailed, "Connection refused"},
		{"a permanent failure ends the retries", 3, []error{refused, permanent}, 2, state.TargetFailed, "failed with exit code 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			m := &fakeMetrics{}
			h.p.Metrics, h.p.BuildRetries = m, tc.retries
			calls := 0
			h.nix.realise = func(ctx context.Context, drv string, opts nix.BuildOptions) ([]string, error) {
				calls++
				if calls <= len(tc.fails) {
					return nil, tc.fails[calls-1]
				}
				return h.realise(ctx, drv, opts)
			}
			c := h.commit(t, map[string]fleetHost{"alpha": {Version: "1"}}, "fleet")
			j := h.job(c)
			res := h.process(t, j)
			alpha := h.targets(t, j.ID)["alpha"]
			if calls != tc.wantCalls {
				t.Errorf("built %d times, want %d", calls, tc.wantCalls)
			}
			if alpha.State != tc.wantState || !strings.Contains(alpha.Reason, tc.wantReason) {
				t.Errorf("alpha = %s (%s), want %s (%s)", alpha.State, alpha.Reason, tc.wantState, tc.wantReason)
			}
			failed := 0
			if tc.wantState == state.TargetFailed {
				failed = 1
			}
			if res.Failed != failed || m.failures["build"] != failed {
				t.Errorf("result %+v, build failures counted %d; want %d failed", res, m.failures["build"], failed)
			}
			if m.builds["x86_64-linux"] != 1 {
				t.Errorf("build durations reported %v, want one for x86_64-linux", m.builds)
			}
			log, err := os.ReadFile(h.p.LogPath(alpha.ID))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := strings.Count(string(log), "--- retrying"), tc.wantCalls-1; got != want {
				t.Errorf("log shows %d retries, want %d:\n%s", got, want, log)
			}
			if _, err := h.cache.Stat(context.Background(), "log/"+strings.TrimPrefix(alpha.DrvPath, nix.StoreDir+"/")); err != nil {
				t.Errorf("build log not in the cache: %v", err)
			}
			wantDeployed := tc.wantState == state.TargetBuilt
			if got := h.host(t, "alpha").DesiredPath == alpha.OutPath; got != wantDeployed {
				t.Errorf("alpha deployed = %v, want %v", got, wantDeployed)
			}
		})
	}
}

// TestBuildRetryStopsWithContext: a worker shutting down while a build
// waits for its retry stops waiting, and the job ends with the context's
// error (the queue gives it to another worker) rather than a failed host.
func TestBuildRetryStopsWithContext(t *testing.T) {
	h := newHarness(t)
	h.p.BuildRetryWait = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.nix.realise = func(context.Context, string, nix.BuildOptions) ([]string, error) {
		time.AfterFunc(50*time.Millisecond, cancel) // while the retry waits
		return nil, &nix.Error{Cmd: "nix-store --realise", Stderr: "error: cannot connect to 'ssh-ng://pi'\n"}
	}
	j := h.job(h.commit(t, map[string]fleetHost{"alpha": {Version: "1"}}, "fleet"))
	start := time.Now()
	if _, err := h.p.Process(ctx, j); !errors.Is(err, context.Canceled) {
		t.Fatalf("Process = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("Process took %s: it waited for the retry", d)
	}
	if a := h.targets(t, j.ID)["alpha"]; a.State == state.TargetFailed {
		t.Errorf("alpha = %s (%s): a shutdown is not a build failure", a.State, a.Reason)
	}
}

// TestBuildOutcomes: a target already in the cache is not built, one
// whose system no builder has is skipped, one whose push fails is failed,
// and the lanes of several systems all build.
func TestBuildOutcomes(t *testing.T) {
	h := newHarness(t)
	hosts := map[string]fleetHost{
		"cached": {Version: "1"},
		"mac":    {System: "aarch64-darwin", Version: "1"},
		"pushy":  {Version: "1"},
		"pi":     {System: "aarch64-linux", Version: "1"},
	}
	if _, err := publish(context.Background(), h.cache, storePath("cached", "1", "out")); err != nil {
		t.Fatal(err)
	}
	h.nix.pathInfo = func(_ context.Context, paths ...string) ([]nix.PathInfo, error) {
		if paths[0] == storePath("pushy", "1", "out") {
			return nil, nix.ErrNotInStore
		}
		return []nix.PathInfo{{Path: paths[0]}}, nil
	}
	j := h.job(h.commit(t, hosts, "fleet"))
	res := h.process(t, j)
	got := h.targets(t, j.ID)
	for host, want := range map[string]struct{ state, reason string }{
		"cached": {state.TargetCached, ""},
		"mac":    {state.TargetSkipped, "no builder for aarch64-darwin"},
		"pushy":  {state.TargetFailed, "push failed: closure: "},
		"pi":     {state.TargetBuilt, "pushed 0 paths"},
	} {
		if g := got[host]; g.State != want.state || !strings.HasPrefix(g.Reason, want.reason) {
			t.Errorf("%s = %s (%s), want %s (%s)", host, g.State, g.Reason, want.state, want.reason)
		}
	}
	if hosts := h.realisedHosts(); !slices.Equal(hosts, []string{"pi", "pushy"}) {
		t.Errorf("built %v, want pi and pushy", hosts)
	}
	if res.Hosts != 4 || res.Failed != 1 {
		t.Errorf("result = %+v, want 4 hosts, 1 failed", res)
	}
}
