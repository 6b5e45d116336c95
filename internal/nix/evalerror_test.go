package nix_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv"
)

const stolasFlake = `{
  outputs = { self }: {
    nixosConfigurations.stolas = import ./hosts/stolas/default.nix;
  };
}
`

// brokenFlake commits files to a fresh git repository and returns its
// flake reference in the long form the farm's mirror uses
// (git+file://…?ref=…&rev=…).
func brokenFlake(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	git("add", ".")
	git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "broken")
	return "git+file://" + dir + "?ref=refs/heads/main&rev=" + git("rev-parse", "HEAD")
}

// nixWrapper writes an executable "nix" into a fresh directory (for
// Client.Bin) that runs the real nix through script.
func nixWrapper(t *testing.T, script string) string {
	t.Helper()
	real, err := exec.LookPath("nix")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	body := "#!/bin/sh\nreal=" + real + "\n" + script + "\n"
	if err := os.WriteFile(filepath.Join(dir, "nix"), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// refusedURL is an http URL on 127.0.0.1 where nothing listens.
func refusedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/input.tar.gz"
}

func host(body string) map[string]string {
	return map[string]string{"flake.nix": stolasFlake, "hosts/stolas/default.nix": body}
}

// slowHost takes seconds and hundreds of MiB to evaluate.
const slowHost = `{ config.system.build.toplevel = builtins.foldl' (a: b: a + b) 0 (builtins.genList (i: i) 50000000); }`

// TestEvalFailures runs nix eval on broken flakes and checks how each
// failure is classified and described: the flake's own errors are
// Permanent, the machine's are Infrastructure, and the description leads
// with Nix's message and position, without the flake reference.
func TestEvalFailures(t *testing.T) {
	env := testenv.Nix(t)
	quick := append(append([]string(nil), env...), "NIX_CONFIG="+testenv.NixConfig+"download-attempts = 1\n")
	tests := []struct {
		name  string
		files map[string]string
		hosts bool // the failure is in listing the hosts (the whole flake)
		opts  nix.EvalOptions
		env   func(t *testing.T) []string
		bin   func(t *testing.T) string
		class nix.FailureClass
		desc  string // the description, or its prefix when it ends in "…"
	}{
		{name: "undefined variable", files: host("{\n  config.system.build.toplevel =\n    pkgz.hello;\n}\n"),
			class: nix.Permanent, desc: "error: undefined variable 'pkgz' at hosts/stolas/default.nix:3:5"},
		{name: "syntax error in a host", files: host("{ config = {\n"),
			class: nix.Permanent, desc: "error: syntax error, unexpected end of file at hosts/stolas/default.nix:1:13"},
		{name: "syntax error in flake.nix", files: map[string]string{"flake.nix": "{\n  outputs = { self }: { nixosConfigurations.a = {\n"}, hosts: true,
			class: nix.Permanent, desc: "error: syntax error, unexpected end of file at flake.nix:2:50"},
		{name: "missing attribute", files: host("{ config.system.build = { }; }"),
			class: nix.Permanent, desc: `error: flake does not provide attribute 'nixosConfigurations."stolas".config.system.build.toplevel'`},
		{name: "failed assertion", files: host("{ config.system.build.toplevel = assert 1 == 2; 1; }"),
			class: nix.Permanent, desc: "error: assertion '(1 == 2)' failed at hosts/stolas/default.nix:1:34"},
		{name: "type error", files: host(`{ config.system.build.toplevel = 1 + "a"; }`),
			class: nix.Permanent, desc: "error: cannot add a string to an integer at hosts/stolas/default.nix:1:38"},
		{name: "infinite recursion", files: host("let x = x; in { config.system.build.toplevel = x; }"),
			class: nix.Permanent, desc: "error: infinite recursion encountered at hosts/stolas/default.nix:1:9"},
		{name: "throw", files: host(`{ config.system.build.toplevel = throw "stolas needs a disk"; }`),
			class: nix.Permanent, desc: "error: stolas needs a disk"},
		{name: "abort", files: host(`{ config.system.build.toplevel = abort "nope"; }`),
			class: nix.Permanent, desc: "error: evaluation aborted with the following error message: 'nope'"},
		{name: "missing file", files: host("{ config.system.build.toplevel = import ./nope.nix; }"),
			class: nix.Permanent, desc: "error: getting status of 'hosts/stolas/nope.nix': No such file or directory"},
		{name: "daemon unreachable", files: host("{ }"),
			env: func(t *testing.T) []string {
				return append(append([]string(nil), env...), "NIX_REMOTE=unix://"+t.TempDir()+"/socket")
			},
			class: nix.Infrastructure, desc: "error: cannot connect to socket at '/tmp/…"},
		{name: "network", hosts: true, env: func(*testing.T) []string { return quick },
			files: map[string]string{"flake.nix": `{
  inputs.x.url = "` + refusedURL(t) + `";
  outputs = { self, x }: { nixosConfigurations = { }; };
}
`},
			class: nix.Infrastructure, desc: "error: unable to download 'http://127.0.0.1:…"},
		{name: "out of memory", files: host(slowHost),
			bin:   func(t *testing.T) string { return nixWrapper(t, `exec prlimit --as=400000000 "$real" "$@"`) },
			class: nix.Infrastructure, desc: "error: out of memory"},
		{name: "killed by a signal", files: host(slowHost),
			bin:   func(t *testing.T) string { return nixWrapper(t, `"$real" "$@" & sleep 0.3; kill -KILL $! $$`) },
			class: nix.Infrastructure, desc: "error: signal: killed"},
		{name: "memory budget", files: host(slowHost), opts: nix.EvalOptions{MemoryBudget: 64 << 20},
			class: nix.Infrastructure, desc: "error: evaluation exceeded its memory budget of 64 MiB"},
		{name: "timeout", files: host(slowHost), opts: nix.EvalOptions{Timeout: 300 * time.Millisecond, MemoryBudget: 2 << 30},
			class: nix.Infrastructure, desc: "error: evaluation of stolas: context deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &nix.Client{Env: env}
			if tt.env != nil {
				c.Env = tt.env(t)
			}
			if tt.bin != nil {
				c.Bin = tt.bin(t)
			}
			flake := brokenFlake(t, tt.files)
			ctx := context.Background()
			var err error
			if tt.hosts {
				_, err = c.Eval(ctx, flake, nix.EvalOptions{})
			} else {
				_, err = c.EvalHost(ctx, flake, "stolas", "nixos", tt.opts)
			}
			if err == nil {
				t.Fatal("evaluation succeeded, want a failure")
			}
			if got := nix.ClassifyEval(err); got != tt.class {
				t.Errorf("ClassifyEval = %v, want %v; err: %v", got, tt.class, err)
			}
			// As the pipeline wraps it, with the flake reference first.
			wrapped := fmt.Errorf("evaluate %s: %w", flake, err)
			if got := nix.ClassifyEval(wrapped); got != tt.class {
				t.Errorf("ClassifyEval(wrapped) = %v, want %v", got, tt.class)
			}
			for what, got := range map[string]string{
				"DescribeError":          nix.DescribeError(wrapped, 140),
				"ErrorMessage(err text)": nix.ErrorMessage(wrapped.Error(), 140),
			} {
				if prefix, ok := strings.CutSuffix(tt.desc, "…"); ok {
					if !strings.HasPrefix(got, prefix) {
						t.Errorf("%s = %q, want it to start with %q", what, got, prefix)
					}
				} else if got != tt.desc {
					t.Errorf("%s = %q, want %q", what, got, tt.desc)
				}
				if strings.Contains(got, "rev=") || strings.Contains(got, "/nix/store/") {
					t.Errorf("%s = %q still names the flake or the store", what, got)
				}
				if n := len(got); n > 140 {
					t.Errorf("%s has %d bytes, want at most 140", what, n)
				}
			}
		})
	}
}

// TestErrorMessageColours: what nix prints on a terminal (colours, carriage
// returns, line erasing) gives the same description.
func TestErrorMessageColours(t *testing.T) {
	env := testenv.Nix(t)
	if _, err := exec.LookPath("script"); err != nil {
		testenv.Missing(t, "script (util-linux) is not installed")
	}
	flake := brokenFlake(t, host("{\n  config.system.build.toplevel =\n    pkgz.hello;\n}\n"))
	cmd := exec.Command("script", "-qec", "nix eval --json '"+flake+"#nixosConfigurations.stolas.config.system.build.toplevel'", "/dev/null")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("nix eval on a terminal: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "\x1b[") {
		t.Fatalf("nix printed no colours on a terminal:\n%q", out)
	}
	want := "error: undefined variable 'pkgz' at hosts/stolas/default.nix:3:5"
	if got := nix.ErrorMessage(string(out), 140); got != want {
		t.Errorf("ErrorMessage = %q, want %q\nfrom %q", got, want, out)
	}
}

// TestErrorMessageLimit: a long message is cut, its position kept.
func TestErrorMessageLimit(t *testing.T) {
	stderr := "warning: Git tree '/srv/fleet' is dirty\nerror: " + strings.Repeat("very ", 40) + "long\n\n       at /nix/store/rqxplidclflm1ffpnh3rkr303mgpzg82-source/hosts/stolas/default.nix:3:5:\n"
	tests := []struct {
		limit int
		want  string
	}{
		{140, "error: " + strings.Repeat("very ", 19) + "ver… at hosts/stolas/default.nix:3:5"},
		{60, "error: very very very ver… at hosts/stolas/default.nix:3:5"},
		{40, "error: very very very very very very …"},
	}
	for _, tt := range tests {
		got := nix.ErrorMessage(stderr, tt.limit)
		if got != tt.want {
			t.Errorf("ErrorMessage(%d) = %q, want %q", tt.limit, got, tt.want)
		}
		if n := len(got); n > tt.limit {
			t.Errorf("ErrorMessage(%d) has %d bytes", tt.limit, n)
		}
	}
	multi := "error:\n       Failed assertions:\n       - The ‘fileSystems’ option does not specify your root file system.\n"
	if got, want := nix.ErrorMessage(multi, 140), "error: Failed assertions: - The ‘fileSystems’ option does not specify your root file system."; got != want {
		t.Errorf("multi-line message: %q, want %q", got, want)
	}
}
