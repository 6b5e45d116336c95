package closurediff_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/homelab-farm/farm/internal/closurediff"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv"
)

// benchClosures adds the two 5,000-path closures of
// scripts/bench.d/closures.nix to the store and returns their roots.
func benchClosures(b *testing.B, env []string) (string, string) {
	b.Helper()
	var roots []string
	for _, variant := range []string{"old", "new"} {
		cmd := exec.Command("nix-instantiate", "--eval", "--read-write-mode",
			"../../scripts/bench.d/closures.nix", "--argstr", "variant", variant)
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("make the %s benchmark closure: %v", variant, err)
		}
		roots = append(roots, strings.Trim(strings.TrimSpace(string(out)), `"`))
	}
	return roots[0], roots[1]
}

// BenchmarkDiffClosures diffs two closures of 5,000 paths each, as the
// farm does it (both closures read from the store database, then
// compared) and as `nix store diff-closures` does it, side by side in one
// run; scripts/bench-closurediff prints the ratio. "compute" is the
// comparison alone, on closures already in memory.
func BenchmarkDiffClosures(b *testing.B) {
	env := testenv.Nix(b)
	client := &nix.Client{Env: env, StoreDB: nix.DefaultStoreDB}
	oldRoot, newRoot := benchClosures(b, env)
	ctx := context.Background()
	diff := func() closurediff.Diff {
		old, err := closurediff.FromStore(ctx, client, oldRoot)
		if err != nil {
			b.Fatal(err)
		}
		cur, err := closurediff.FromStore(ctx, client, newRoot)
		if err != nil {
			b.Fatal(err)
		}
		return closurediff.Compute(old, cur)
	}
	nixDiff := func() string {
		cmd := exec.Command("nix", "store", "diff-closures", oldRoot, newRoot)
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("nix store diff-closures: %v", err)
		}
		return ansi.ReplaceAllString(string(out), "")
	}
	// Both sides do the same work: same closures, same answer.
	d := diff()
	if d.PathsBefore != 5000 || d.PathsAfter != 5000 {
		b.Fatalf("closures of %d and %d paths, want 5000 each", d.PathsBefore, d.PathsAfter)
	}
	if got, want := d.NixText(), nixDiff(); got != want {
		b.Fatalf("diff differs from nix store diff-closures:\n%s\nnix:\n%s", got, want)
	}

	b.Run("farm", func(b *testing.B) {
		for b.Loop() {
			diff()
		}
	})
	b.Run("nix", func(b *testing.B) {
		for b.Loop() {
			nixDiff()
		}
	})
	old, err := closurediff.FromStore(ctx, client, oldRoot)
	if err != nil {
		b.Fatal(err)
	}
	cur, err := closurediff.FromStore(ctx, client, newRoot)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("compute", func(b *testing.B) {
		for b.Loop() {
			closurediff.Compute(old, cur)
		}
	})
}
