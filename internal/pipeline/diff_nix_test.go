package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/closurediff"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/pipeline"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
)

// packagesFlake is a fleet whose hosts' systems reference versioned
// packages (hosts.json: {"<host>": {"version": …, "salt": …, "packages":
// [{"name", "version", "size"}]}}), so that closures differ by package
// as NixOS systems do.
const packagesFlake = `{
  outputs = { self }:
    let
      hosts = builtins.fromJSON (builtins.readFile ./hosts.json);
      pkg = salt: p: derivation {
        name = "${p.name}-${p.version}";
        system = "x86_64-linux";
        builder = "/bin/sh";
        args = [ "-c" "export PATH=/usr/bin:/bin; mkdir -p $out; head -c ${toString p.size} /dev/urandom > $out/data; echo ${salt} > $out/salt" ];
      };
      toplevel = name: h: derivation {
        name = "nixos-system-${name}-${h.version}";
        system = "x86_64-linux";
        builder = "/bin/sh";
        args = [ "-c" ("export PATH=/usr/bin:/bin; mkdir -p $out; echo ${name} > $out/name; "
          + builtins.concatStringsSep "" (map (p: "echo ${pkg h.salt p} >> $out/packages; ") h.packages)) ];
      };
    in
    {
      nixosConfigurations = builtins.mapAttrs (n: h: { config.system.build.toplevel = toplevel n h; }) hosts;
      darwinConfigurations = { };
    };
}
`

var ansiColour = regexp.MustCompile("\x1b\\[[0-9;]*m")

// TestStoredDiffMatchesNix: the diff the pipeline stores for a built
// target is the one ` + "`nix store diff-closures`" + ` prints for the same two
// closures (the previous build and this one), and its download is what
// the cache's narinfos say of the new paths.
func TestStoredDiffMatchesNix(t *testing.T) {
	f := newFarm(t, map[string]fleettest.Host{"stolas": {System: "x86_64-linux", Version: "0"}})
	env := testenv.Nix(t)
	ctx := context.Background()
	salt := fmt.Sprint(time.Now().UnixNano())
	commit := func(version string, pkgs ...string) string {
		type pkg struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			Size    int    `json:"size"`
		}
		var ps []pkg
		for _, p := range pkgs {
			name, v, _ := strings.Cut(p, " ")
			ps = append(ps, pkg{name, v, 4096 + 1000*len(ps)})
		}
		hosts, _ := json.Marshal(map[string]any{"stolas": map[string]any{"version": version, "salt": salt, "packages": ps}})
		f.repo.CommitFile(t, "nix/flake.nix", packagesFlake, "flake")
		return f.repo.CommitFile(t, "nix/hosts.json", string(hosts), "stolas "+version)
	}
	c1 := commit("24.11.1", "linux 6.12.9", "foo 1.0", "zlib 1.3", "hello 2.12")
	f.push(t, c1)
	f.runAll(t)
	old := f.targets(t)["stolas"]
	// The host switched to it and said so.
	if err := f.st.Report(ctx, "stolas", old.OutPath, string(farmapi.ResultSwitched), ""); err != nil {
		t.Fatal(err)
	}
	c2 := commit("24.11.2", "linux 6.12.10", "foo 1.1", "zlib 1.3", "openssl 3.3")
	f.push(t, c2)
	f.runAll(t)
	cur := f.targets(t)["stolas"]
	if old.State != "built" || cur.State != "built" || old.OutPath == cur.OutPath {
		t.Fatalf("targets %+v and %+v, want two different builds", old, cur)
	}

	got, err := pipeline.TargetDiff(ctx, f.st, cur.ID)
	if err != nil {
		t.Fatal(err)
	}
	prev := got.Previous
	if prev == nil || prev.Error != "" || prev.BasePath != old.OutPath || prev.BaseTarget != old.ID || prev.BaseCommit != c1 {
		t.Fatalf("previous diff = %+v, want one against %s", prev, old.OutPath)
	}
	// The stored diff, read back as closurediff reads it, prints what Nix
	// prints.
	raw, _ := json.Marshal(prev)
	var d closurediff.Diff
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nix", "store", "diff-closures", old.OutPath, cur.OutPath)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix store diff-closures: %v", err)
	}
	want := ansiColour.ReplaceAllString(string(out), "")
	if d.NixText() != want {
		t.Errorf("stored diff differs from nix store diff-closures\nstored:\n%s\nnix:\n%s", d.NixText(), want)
	}
	for _, line := range []string{"linux: 6.12.9 → 6.12.10", "foo: 1.0 → 1.1", "openssl: ∅ → 3.3", "hello: 2.12 → ∅", "nixos-system-stolas: 24.11.1 → 24.11.2"} {
		if !strings.Contains(want, line) {
			t.Errorf("nix's output lacks %q: the test closures do not cover it\n%s", line, want)
		}
	}
	if prev.Added != 1 || prev.Removed != 1 || prev.Changed != 3 {
		t.Errorf("counts +%d ~%d -%d, want +1 ~3 -1", prev.Added, prev.Changed, prev.Removed)
	}

	// The download: every path of the new closure the old one lacks, at
	// the compressed size its narinfo gives.
	oldPaths := map[string]bool{}
	for _, p := range testenv.Requisites(t, env, old.OutPath) {
		oldPaths[p] = true
	}
	var want2 farmapi.Download
	for _, p := range testenv.Requisites(t, env, cur.OutPath) {
		if oldPaths[p] {
			continue
		}
		rc, err := f.cache.Get(ctx, cache.NarInfoKey(p))
		if err != nil {
			t.Fatal(err)
		}
		ni, err := cache.ParseNarInfo(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		want2.Paths++
		want2.Bytes += ni.FileSize
	}
	if prev.Download != want2 || want2.Paths != 4 || want2.Bytes == 0 {
		t.Errorf("download %+v, want %+v (4 new paths: the system, linux, foo and openssl)", prev.Download, want2)
	}
	// Against what the host runs (the same closure here): the same diff.
	if c := got.Current; c == nil || c.Error != "" || c.BasePath != old.OutPath || c.Summary != prev.Summary || c.Headline != prev.Headline {
		t.Errorf("current diff = %+v, want the previous one's", c)
	}
	// The host status tells of it within the forge's limit.
	st := f.forge.status(c2, "farm/host/stolas")
	if !strings.HasPrefix(st.Description, "built: +1 ~3 -1, fetch ") || len(st.Description) > 140 {
		t.Errorf("stolas status = %q", st.Description)
	}
}
