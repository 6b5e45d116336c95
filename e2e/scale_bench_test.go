package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/testenv/fleettest"
	"github.com/homelab-farm/farm/internal/testenv/remotebuilder"
)

const (
	// scaleHosts is the size of the cold fleet, split over two branches
	// (two evaluations, so that two builders each have one).
	scaleHosts = 50
	// scaleWork is each host's CPU work (fleettest.Host.Work): a few
	// seconds of one core.
	scaleWork = 2_000_000
)

// BenchmarkScaleOut builds a cold fleet of scaleHosts hosts, whose builds
// each cost a few seconds of CPU, in three shapes, side by side in one run,
// each "machine" pinned to a core of its own (taskset): one builder; two
// builders on one PostgreSQL and one MinIO bucket; one builder plus one
// remote build machine over ssh-ng. It reports each shape's wall time and
// the two-machine shapes as ratios of the one-builder time (goal: at most
// 0.6).
func BenchmarkScaleOut(b *testing.B) {
	if runtime.NumCPU() < 2 {
		b.Fatalf("%d CPUs: the shapes need two cores to pin their machines to", runtime.NumCPU())
	}
	var one, two, remote time.Duration
	for range b.N {
		one += scaleOneBuilder(b)
		two += scaleTwoBuilders(b)
		remote += scaleRemoteMachine(b)
	}
	n := float64(b.N)
	b.ReportMetric(one.Seconds()/n, "s-one-builder")
	b.ReportMetric(two.Seconds()/n, "s-two-builders")
	b.ReportMetric(remote.Seconds()/n, "s-builder+remote")
	b.ReportMetric(two.Seconds()/one.Seconds(), "two/one")
	b.ReportMetric(remote.Seconds()/one.Seconds(), "remote/one")
}

// scaleFleet makes a farm whose repository has half the cold fleet on main
// and the other half on staging; it returns both commits.
func scaleFleet(b *testing.B) (f *Farm, mainCommit, stagingCommit string) {
	v := fmt.Sprint(time.Now().UnixNano())
	half := func(from int) map[string]fleettest.Host {
		hosts := map[string]fleettest.Host{}
		for i := from; i < from+scaleHosts/2; i++ {
			hosts[fmt.Sprintf("h%02d", i)] = fleettest.Host{System: "x86_64-linux", Version: v, Work: scaleWork}
		}
		return hosts
	}
	f = NewFarm(b, half(0))
	f.UsePostgres(b)
	f.UseMinIO(b)
	mainCommit = f.Repo.CommitAll(b, "main "+v)
	git(b, f.Repo.Dir, "checkout", "-q", "-b", "staging")
	stagingCommit = f.Repo.Commit(b, half(scaleHosts/2), "staging "+v)
	git(b, f.Repo.Dir, "checkout", "-q", "main")
	return f, mainCommit, stagingCommit
}

// scaleRun pushes both halves to the first builder and waits until both
// evaluations finished with every host built; it returns the wall time.
func scaleRun(b *testing.B, f *Farm, builders []*Builder, mainCommit, stagingCommit string) time.Duration {
	b.Helper()
	start := time.Now()
	jobs := []int64{
		f.PushBranch(b, builders[0].Base, "main", mainCommit, "main-"+mainCommit),
		f.PushBranch(b, builders[0].Base, "staging", stagingCommit, "staging-"+stagingCommit),
	}
	for _, job := range jobs {
		ev := WaitEvaluation(b, builders[0].Base, job, 30*time.Minute)
		for host, tg := range ev.Hosts() {
			if tg.State != "built" {
				b.Fatalf("%s is %s (%s), want built", host, tg.State, tg.Reason)
			}
		}
	}
	return time.Since(start)
}

func scaleOneBuilder(b *testing.B) time.Duration {
	f, c1, c2 := scaleFleet(b)
	bl := StartBuilderOn(b, 0, "one", f.Env, f.Args("one", "--workers", "1")...)
	d := scaleRun(b, f, []*Builder{bl}, c1, c2)
	b.Logf("one builder (core 0): %s", d.Round(time.Millisecond))
	return d
}

func scaleTwoBuilders(b *testing.B) time.Duration {
	f, c1, c2 := scaleFleet(b)
	var bls []*Builder
	for cpu, name := range []string{"a", "b"} {
		bls = append(bls, StartBuilderOn(b, cpu, name, f.Env, f.Args(name, "--workers", "1")...))
	}
	d := scaleRun(b, f, bls, c1, c2)
	b.Logf("two builders on PostgreSQL (cores 0 and 1): %s", d.Round(time.Millisecond))
	return d
}

func scaleRemoteMachine(b *testing.B) time.Duration {
	m := remotebuilder.Start(b)
	pid, err := os.ReadFile(filepath.Join(m.Dir, "sshd.pid"))
	if err != nil {
		b.Fatalf("sshd of %s: %v", m.Name, err)
	}
	// sshd and every nix-daemon it starts for the builder run on core 1.
	if out, err := exec.Command("taskset", "-a", "-p", "-c", "1", strings.TrimSpace(string(pid))).CombinedOutput(); err != nil {
		b.Fatalf("pin sshd of %s to core 1: %v\n%s", m.Name, err, out)
	}
	f, c1, c2 := scaleFleet(b)
	// One local build at a time (one core) and the machine's one.
	bl := StartBuilderOn(b, 0, "local", f.Env, f.Args("local", "--workers", "1", "--builders", m.Spec("x86_64-linux"))...)
	d := scaleRun(b, f, []*Builder{bl}, c1, c2)
	b.Logf("one builder (core 0) and a remote machine (core 1): %s", d.Round(time.Millisecond))
	return d
}

func git(t testing.TB, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}
