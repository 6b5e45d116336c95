package nix_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/file"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/remotebuilder"
)

// remoteDrv is a derivation that records where it was built: the host name
// of the machine that ran it.
const remoteDrv = `{ salt }: derivation {
  name = "remote-proof";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ "-c" "export PATH=/usr/bin:/bin; mkdir $out; cat /proc/sys/kernel/hostname > $out/built-on; echo ${salt} > $out/salt; echo built-remotely" ];
}
`

// remoteNix is a nix client that cannot build locally (max-jobs 0): every
// build goes to a remote builder or fails.
func remoteNix(t *testing.T) *nix.Client {
	t.Helper()
	env := append(testenv.Nix(t), "NIX_CONFIG="+testenv.NixConfig+"max-jobs = 0\n")
	return &nix.Client{Env: env}
}

// instantiate writes remoteDrv with a fresh salt and returns its .drv path.
func instantiate(t *testing.T, c *nix.Client) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "remote.nix")
	if err := os.WriteFile(file, []byte(remoteDrv), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nix-instantiate", file, "--argstr", "salt", fmt.Sprint(time.Now().UnixNano()))
	cmd.Env = c.Env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix-instantiate: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestRemoteBuild builds on a real second machine over ssh-ng (the local
// machine may not build), proves the build ran there, then pushes the
// output to a farm cache and substitutes it with the real nix client into a
// fresh store.
func TestRemoteBuild(t *testing.T) {
	c := remoteNix(t)
	m := remotebuilder.Start(t)
	drv := instantiate(t, c)
	ctx := context.Background()

	var log strings.Builder
	out, err := c.Realise(ctx, drv, nix.BuildOptions{Builders: m.Spec("x86_64-linux"), Log: &log,
		AddRoot: filepath.Join(t.TempDir(), "result")})
	if err != nil {
		t.Fatalf("Realise on %s: %v\nlog:\n%s\nsshd:\n%s", m.URI(), err, log.String(), m.Log())
	}
	if len(out) != 1 {
		t.Fatalf("Realise = %v, want one output", out)
	}
	builtOn, err := os.ReadFile(filepath.Join(out[0], "built-on"))
	if err != nil || strings.TrimSpace(string(builtOn)) != m.Name {
		t.Fatalf("output says built on %q (%v), want the remote machine %q", builtOn, err, m.Name)
	}
	if !m.Has(out[0]) {
		t.Errorf("remote store %s lacks %s", m.Store(), out[0])
	}
	if want := "on '" + m.URI() + "'"; !strings.Contains(log.String(), want) {
		t.Errorf("build log does not say %q:\n%s", want, log.String())
	}
	if !strings.Contains(log.String(), "built-remotely") {
		t.Errorf("build log lacks the remote build's own output:\n%s", log.String())
	}

	// Into the farm's cache with the farm's pusher, out again with the real
	// nix client into a fresh store trusting only the farm's key.
	key, err := cache.GenerateKey("farm-test-1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/nix-cache/", http.StripPrefix("/nix-cache", cache.NewHandler(b)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	p := &cache.Pusher{Backend: b, Key: key, Store: &nix.Client{Env: testenv.Nix(t)}}
	if res, err := p.Push(ctx, out[0]); err != nil || res.Uploaded != 1 {
		t.Fatalf("Push = %+v, %v; want 1 path uploaded", res, err)
	}
	root := t.TempDir()
	cmd := exec.Command("nix", "copy", "--from", srv.URL+"/nix-cache", "--to", "local?root="+root,
		"--option", "trusted-public-keys", key.Public().String(),
		"--option", "narinfo-cache-negative-ttl", "0", out[0])
	cmd.Env = testenv.Nix(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nix copy from the farm cache: %v\n%s", err, b)
	}
	got, err := os.ReadFile(filepath.Join(root, out[0], "built-on"))
	if err != nil || strings.TrimSpace(string(got)) != m.Name {
		t.Fatalf("substituted output says %q (%v), want %q", got, err, m.Name)
	}
}

// TestRemoteBuilderDown: a machine whose sshd is stopped, or whose network
// is gone, is reported by name with SSH's reason; with a second machine
// configured the build goes there.
func TestRemoteBuilderDown(t *testing.T) {
	c := remoteNix(t)
	down := remotebuilder.Start(t)
	up := remotebuilder.Start(t)
	ctx := context.Background()

	down.Stop()
	cases := []struct {
		name       string
		builders   string
		prepare    func(t *testing.T)
		wantReason string // "" : the build succeeds on up
	}{
		{"sshd stopped", down.Spec("x86_64-linux"), nil,
			"no machine could build it: " + down.URI() + ": connection refused"},
		{"sshd stopped, other machine up", down.Spec("x86_64-linux") + " ; " + up.Spec("x86_64-linux"), nil, ""},
		{"namespace gone", down.Spec("x86_64-linux"), func(t *testing.T) { down.Remove(t) },
			"no machine could build it: " + down.URI() + ": "},
		{"namespace gone, other machine up", down.Spec("x86_64-linux") + "\n" + up.Spec("x86_64-linux"), nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prepare != nil {
				tc.prepare(t)
			}
			drv := instantiate(t, c)
			var log strings.Builder
			out, err := c.Realise(ctx, drv, nix.BuildOptions{Builders: tc.builders, Log: &log})
			failures := nix.RemoteFailures(log.String())
			if len(failures) != 1 || failures[0].Machine != down.URI() {
				t.Errorf("RemoteFailures = %+v, want one for %s\nlog:\n%s", failures, down.URI(), log.String())
			}
			if tc.wantReason == "" {
				if err != nil {
					t.Fatalf("Realise with %s up: %v\nlog:\n%s", up.URI(), err, log.String())
				}
				if b, err := os.ReadFile(filepath.Join(out[0], "built-on")); err != nil || strings.TrimSpace(string(b)) != up.Name {
					t.Errorf("built on %q (%v), want %q", b, err, up.Name)
				}
				return
			}
			var nerr *nix.Error
			if !errors.As(err, &nerr) {
				t.Fatalf("Realise = %v, want a *nix.Error\nlog:\n%s", err, log.String())
			}
			reason := nix.RemoteBuildReason(nerr.Stderr)
			if !strings.HasPrefix(reason, tc.wantReason) || len(reason) == len(down.URI())+len("no machine could build it: : ") {
				t.Errorf("RemoteBuildReason = %q, want it to start with %q and say why\nlog:\n%s", reason, tc.wantReason, log.String())
			}
			t.Logf("reason: %s", reason)
		})
	}
}

// TestRealisePinned: LocalOnly builds here although Nix's configuration
// offers a remote machine; RemoteOnly with one machine's line builds there
// although this machine may build; a pinned machine that is down fails
// with its reason instead of building here.
func TestRealisePinned(t *testing.T) {
	up := remotebuilder.Start(t)
	down := remotebuilder.Start(t)
	down.Stop()
	c := &nix.Client{Env: append(testenv.Nix(t), "NIX_CONFIG="+testenv.NixConfig+"max-jobs = 1\nbuilders = "+up.Spec("x86_64-linux")+"\n")}
	ctx := context.Background()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		opts    nix.BuildOptions
		builtOn string // "": fails
	}{
		{"local only", nix.BuildOptions{LocalOnly: true}, host},
		{"remote only, that machine", nix.BuildOptions{RemoteOnly: true, Builders: up.Spec("x86_64-linux")}, up.Name},
		{"remote only, machine down", nix.BuildOptions{RemoteOnly: true, Builders: down.Spec("x86_64-linux")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log strings.Builder
			tc.opts.Log = &log
			out, err := c.Realise(ctx, instantiate(t, c), tc.opts)
			if tc.builtOn == "" {
				var nerr *nix.Error
				if !errors.As(err, &nerr) {
					t.Fatalf("Realise = %v, want a *nix.Error\nlog:\n%s", err, log.String())
				}
				if want := "no machine could build it: " + down.URI() + ": connection refused"; nix.RemoteBuildReason(nerr.Stderr) != want {
					t.Errorf("RemoteBuildReason = %q, want %q", nix.RemoteBuildReason(nerr.Stderr), want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Realise: %v\nlog:\n%s", err, log.String())
			}
			if b, err := os.ReadFile(filepath.Join(out[0], "built-on")); err != nil || strings.TrimSpace(string(b)) != tc.builtOn {
				t.Errorf("built on %q (%v), want %q\nlog:\n%s", b, err, tc.builtOn, log.String())
			}
		})
	}
}
