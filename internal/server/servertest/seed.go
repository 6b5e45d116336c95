package servertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/queue/sqlite"
	"github.com/homelab-farm/farm/internal/state"
)

// Commits of the seeded state, oldest first.
const (
	C1 = "1111111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	C2 = "2222222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	C3 = "3333333333cccccccccccccccccccccccccccccc"
)

// Seeded is a state seeded with two evaluations of a four-host fleet
// (alpha, bravo, charlie, delta), build logs, and a queue holding a third
// commit not evaluated yet.
type Seeded struct {
	State  *state.Store
	Queue  queue.Queue
	LogDir string
	// Config has one repository, "homelab", on Codeberg.
	Config  *config.Config
	Evals   []state.Evaluation
	Targets map[string]state.Target // "host@commit-number", e.g. "bravo@2"
}

// StorePath is the seeded closure of host at commit n.
func StorePath(host string, n int) string {
	return fmt.Sprintf("/nix/store/%032d-nixos-system-%s-%d", n, host, n)
}

// Seed makes the seeded state and queue in a temporary directory; the
// test's cleanup closes them. Commit 1's evaluation is done (alpha and
// bravo built, charlie cached, delta skipped); commit 2's runs (bravo
// failed with HTML in its reason and log, charlie building); alpha runs
// commit 1's closure, bravo failed to switch to it.
func Seed(t testing.TB) *Seeded {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := state.Open(ctx, filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	q, err := sqlite.Open(ctx, filepath.Join(dir, "queue.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	logDir := filepath.Join(dir, "logs")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Repositories = []config.Repository{{
		Name:    "homelab",
		Remotes: []config.Remote{{URL: "https://codeberg.org/alice/homelab"}},
	}}
	f := &Seeded{State: st, Queue: q, LogDir: logDir, Config: cfg, Targets: make(map[string]state.Target)}

	var jobs []int64
	for _, c := range []string{C1, C2, C3} {
		res, err := q.Enqueue(ctx, queue.EnqueueRequest{
			Kind: queue.KindEval, Key: queue.EvalKey("homelab", c), Repo: "homelab", Branch: "main", Commit: c, Deploy: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, res.JobID)
	}
	type target struct{ host, system, state, reason, log string }
	for n, spec := range []struct {
		commit  string
		state   string
		targets []target
	}{
		{C1, state.EvalDone, []target{
			{"alpha", "x86_64-linux", state.TargetBuilt, "", "building alpha\n"},
			{"bravo", "x86_64-linux", state.TargetBuilt, "", "building bravo\n"},
			{"charlie", "aarch64-linux", state.TargetCached, "", ""},
			{"delta", "aarch64-darwin", state.TargetSkipped, "no builder for aarch64-darwin", ""},
		}},
		{C2, state.EvalRunning, []target{
			{"alpha", "x86_64-linux", state.TargetBuilt, "", "building alpha again\n"},
			{"bravo", "x86_64-linux", state.TargetFailed, "exit 1 <script>alert('reason')</script>",
				"building '/nix/store/xyz-bravo.drv'...\nerror: builder for bravo failed with exit code 1\n<script>alert('log')</script>\n"},
			{"charlie", "aarch64-linux", state.TargetBuilding, "", "building charlie under qemu\n"},
			{"delta", "aarch64-darwin", state.TargetSkipped, "no builder for aarch64-darwin", ""},
		}},
	} {
		e, _, err := st.StartEvaluation(ctx, state.Evaluation{JobID: jobs[n], Repo: "homelab", Branch: "main", Commit: spec.commit, Deploy: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range spec.targets {
			got, err := st.PutTarget(ctx, state.Target{EvalID: e.ID, Host: tt.host, Kind: "nixos", System: tt.system,
				DrvPath: "/nix/store/" + strings.Repeat("d", 32) + "-" + tt.host + ".drv", OutPath: StorePath(tt.host, n+1), State: state.TargetPending})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.SetTargetState(ctx, got.ID, tt.state, tt.reason); err != nil {
				t.Fatal(err)
			}
			if tt.log != "" {
				if err := os.WriteFile(f.LogPath(got.ID), []byte(tt.log), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got.State, got.Reason = tt.state, tt.reason
			f.Targets[tt.host+"@"+strconv.Itoa(n+1)] = got
		}
		if spec.state != state.EvalRunning {
			if err := st.FinishEvaluation(ctx, e.ID, spec.state, "", ""); err != nil {
				t.Fatal(err)
			}
		}
		f.Evals = append(f.Evals, e)
	}

	// alpha runs what it should; bravo failed to switch to commit 1's closure.
	for seq, h := range []string{"alpha", "bravo"} {
		if err := st.SetDesired(ctx, h, StorePath(h, 1), C1, uint64(seq+1), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Report(ctx, "alpha", StorePath("alpha", 1), "switched", ""); err != nil {
		t.Fatal(err)
	}
	if err := st.Report(ctx, "bravo", StorePath("bravo", 0), "failed", "health check failed"); err != nil {
		t.Fatal(err)
	}
	return f
}

// LogPath is the build log of target id.
func (f *Seeded) LogPath(id int64) string {
	return filepath.Join(f.LogDir, strconv.FormatInt(id, 10)+".log")
}

// AppendFile appends s to the file at path, making it first.
func AppendFile(t testing.TB, path, s string) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
}
