package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// ToolsDir is where scripts/setup installs the tools it builds or fetches
// (minio, sops, the aarch64 busybox).
func ToolsDir() string {
	if d := os.Getenv("FARM_TOOLS_DIR"); d != "" {
		return d
	}
	return "/var/lib/homelab-farm/tools"
}

// CI reports whether the tests run in CI, where nothing may be skipped.
func CI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1" || v == "yes"
}

// Missing skips the test with reason, or fails it when CI is set.
func Missing(t testing.TB, reason string) {
	t.Helper()
	if CI() {
		t.Fatalf("%s (CI=true: run scripts/setup)", reason)
	}
	t.Skipf("%s; run `make setup` (or scripts/setup) to install it", reason)
}

// NixConfig is the configuration every test's nix invocation runs with: no
// substituters, no build users, aarch64 builds through binfmt/qemu.
const NixConfig = "experimental-features = nix-command flakes\n" +
	"build-users-group =\n" +
	"substituters =\n" +
	"sandbox = false\n" +
	"extra-platforms = aarch64-linux\n"

// Nix makes sure the nix CLI works and returns the environment to run it
// with: NIX_CONFIG as above and a private XDG cache directory, so that narinfo
// lookups remembered by one test never leak into another.
func Nix(t testing.TB) []string {
	t.Helper()
	if _, err := exec.LookPath("nix"); err != nil {
		Missing(t, "nix is not installed")
	}
	env := append(os.Environ(),
		"NIX_CONFIG="+NixConfig,
		"XDG_CACHE_HOME="+t.TempDir(),
	)
	cmd := exec.Command("nix", "--version")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		Missing(t, "nix does not run: "+strings.TrimSpace(string(out)))
	}
	return env
}

// Requisites is the closure of root as Nix lists it (nix-store --query
// --requisites), run with env: the oracle tests compare the farm's own
// closure code with.
func Requisites(t testing.TB, env []string, root string) []string {
	t.Helper()
	cmd := exec.Command("nix-store", "--query", "--requisites", root)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix-store --query --requisites %s: %v", root, err)
	}
	return strings.Fields(string(out))
}

// Aarch64 makes sure aarch64-linux binaries run through binfmt/qemu and
// returns the static aarch64 busybox that test derivations use as builder.
func Aarch64(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat("/proc/sys/fs/binfmt_misc/qemu-aarch64"); err != nil {
		Missing(t, "aarch64 binfmt handler (qemu-user-static) is not registered")
	}
	bb := ToolsDir() + "/busybox-aarch64"
	out, err := exec.Command(bb, "uname", "-m").Output()
	if err != nil || strings.TrimSpace(string(out)) != "aarch64" {
		Missing(t, "static aarch64 busybox does not run under qemu: "+bb)
	}
	return bb
}

// Docker makes sure a Docker engine answers.
func Docker(t testing.TB) {
	t.Helper()
	if err := exec.Command("docker", "info").Run(); err != nil {
		Missing(t, "no Docker engine answers (docker info failed)")
	}
}

// Tool returns the path of a tool installed by scripts/setup into ToolsDir
// or found on PATH.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p := ToolsDir() + "/" + name
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	Missing(t, name+" is not installed")
	return ""
}

// PostgresURL returns the DSN of the PostgreSQL server scripts/setup starts
// (FARM_TEST_POSTGRES_URL overrides it) after checking that it answers.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("FARM_TEST_POSTGRES_URL")
	if u == "" {
		u = "postgres://farm:farm@127.0.0.1:5432/farm?sslmode=disable"
	}
	if err := exec.Command("pg_isready", "-q", "-h", "127.0.0.1").Run(); err != nil {
		Missing(t, "PostgreSQL does not answer on 127.0.0.1:5432")
	}
	return u
}
