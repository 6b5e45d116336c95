package nix_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv"
)

// fleetRepo copies testdata/fleet into a fresh git repository and returns
// its flake reference.
func fleetRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src, err := os.ReadFile("testdata/fleet/flake.nix")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"flake.nix": string(src),
		"salt":      time.Now().Format(time.RFC3339Nano),
		"busybox":   testenv.Aarch64(t),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"init", "-q"}, {"add", "."},
		{"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "fleet"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return "git+file://" + dir
}

func TestEval(t *testing.T) {
	c := &nix.Client{Env: testenv.Nix(t)}
	flake := fleetRepo(t)
	targets, err := c.Eval(context.Background(), flake, nix.EvalOptions{MemoryBudget: 300 << 20, Jobs: 2})
	if err != nil {
		t.Fatalf("Eval: %v", err)
	}
	got := map[string]nix.Target{}
	for _, tg := range targets {
		got[tg.Host] = tg
	}
	if len(got) != 6 {
		t.Fatalf("Eval found hosts %v, want 6", targets)
	}
	for host, system := range map[string]string{"alpha": "x86_64-linux", "beta": "x86_64-linux", "pi": "aarch64-linux", "mac": "aarch64-darwin"} {
		tg := got[host]
		if tg.Error != "" || tg.System != system || !strings.HasSuffix(tg.DrvPath, ".drv") || !strings.HasPrefix(tg.OutPath, "/nix/store/") {
			t.Errorf("%s = %+v, want a %s target with drv and out paths", host, tg, system)
		}
	}
	if got["mac"].Kind != "darwin" || got["alpha"].Kind != "nixos" {
		t.Errorf("kinds: mac %q, alpha %q; want darwin, nixos", got["mac"].Kind, got["alpha"].Kind)
	}
	if e := got["broken"].Error; !strings.Contains(e, "broken host: missing option") {
		t.Errorf("broken host error = %q, want the evaluation's message", e)
	}
	if e := got["hog"].Error; !strings.Contains(e, nix.ErrMemoryBudget.Error()) {
		t.Errorf("hog host error = %q, want the memory budget", e)
	}
	_, err = c.EvalHost(context.Background(), flake, "hog", "nixos", nix.EvalOptions{MemoryBudget: 300 << 20})
	if !errors.Is(err, nix.ErrMemoryBudget) {
		t.Errorf("EvalHost(hog) = %v, want ErrMemoryBudget", err)
	}
}

func TestRealiseAndSystems(t *testing.T) {
	c := &nix.Client{Env: testenv.Nix(t)}
	flake := fleetRepo(t)
	ctx := context.Background()
	systems, err := c.Systems(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(systems, "x86_64-linux") || !slices.Contains(systems, "aarch64-linux") || slices.Contains(systems, "aarch64-darwin") {
		t.Fatalf("Systems = %v, want x86_64-linux and aarch64-linux (qemu) but no darwin", systems)
	}
	for _, host := range []string{"alpha", "pi"} {
		tg, err := c.EvalHost(ctx, flake, host, "nixos", nix.EvalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var log strings.Builder
		root := filepath.Join(t.TempDir(), "root-"+host)
		out, err := c.Realise(ctx, tg.DrvPath, nix.BuildOptions{Log: &log, MaxSilent: time.Minute, AddRoot: root})
		if err != nil {
			t.Fatalf("Realise(%s): %v", host, err)
		}
		if len(out) != 1 || out[0] != tg.OutPath {
			t.Errorf("Realise(%s) = %v, want [%s]", host, out, tg.OutPath)
		}
		if target, err := os.Readlink(root); err != nil || target != tg.OutPath {
			t.Errorf("GC root of %s -> %q, %v; want %s", host, target, err, tg.OutPath)
		}
		if !strings.Contains(log.String(), "building") {
			t.Errorf("build log of %s = %q, want nix's build output", host, log.String())
		}
	}
	pi, _ := c.EvalHost(ctx, flake, "pi", "nixos", nix.EvalOptions{})
	if b, _ := os.ReadFile(pi.OutPath); strings.TrimSpace(string(b)) != "aarch64" {
		t.Errorf("pi's closure says %q, want aarch64 (built under qemu)", b)
	}
	mac, _ := c.EvalHost(ctx, flake, "mac", "darwin", nix.EvalOptions{})
	if _, err := c.Realise(ctx, mac.DrvPath, nix.BuildOptions{}); err == nil {
		t.Errorf("building the darwin host with no darwin builder succeeded")
	}
}

// TestPathInfoFromDatabase compares what the store's database says with
// what `nix path-info` says, for a closure with references and for a path
// the store does not hold.
func TestPathInfoFromDatabase(t *testing.T) {
	env := testenv.Nix(t)
	cli := &nix.Client{Env: env}
	db := &nix.Client{Env: env, StoreDB: nix.DefaultStoreDB}
	flake := fleetRepo(t)
	ctx := context.Background()
	tg, err := cli.EvalHost(ctx, flake, "pi", "nixos", nix.EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Realise(ctx, tg.DrvPath, nix.BuildOptions{}); err != nil {
		t.Fatal(err)
	}
	expr := filepath.Join(t.TempDir(), "refs.nix")
	src := `let a = derivation { name = "a-` + time.Now().Format("150405.000000") + `"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo a > $out" ]; };
		b = derivation { name = "b"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo ${a} > $out" ]; };
		in derivation { name = "c"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo ${a} ${b} $out > $out" ]; }`
	if err := os.WriteFile(expr, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	withRefs, err := cli.BuildFile(ctx, expr)
	if err != nil {
		t.Fatal(err)
	}
	// (nix path-info takes a .drv for its outputs; the database answers for
	// the .drv itself, so only output paths are compared.)
	for _, paths := range [][]string{{tg.OutPath}, {tg.OutPath, tg.OutPath}, withRefs, {withRefs[0], tg.OutPath}} {
		want, err := cli.PathInfo(ctx, paths...)
		if err != nil {
			t.Fatal(err)
		}
		got, err := db.PathInfo(ctx, paths...)
		if err != nil {
			t.Fatalf("PathInfo from the database: %v", err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("PathInfo(%v)\nfrom the database: %+v\nfrom nix:          %+v", paths, got, want)
		}
	}
	drv, err := db.PathInfo(ctx, tg.DrvPath)
	if err != nil || len(drv) != 1 || drv[0].Path != tg.DrvPath || !strings.HasPrefix(drv[0].CA, "text:") {
		t.Errorf("PathInfo(%s) = %+v, %v; want the derivation itself", tg.DrvPath, drv, err)
	}
	_, err = db.PathInfo(ctx, "/nix/store/00000000000000000000000000000000-absent")
	if !errors.Is(err, nix.ErrNotInStore) {
		t.Errorf("PathInfo(absent) = %v, want ErrNotInStore", err)
	}
}
