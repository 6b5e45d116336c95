package remotebuilder

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/testenv"
)

// Machine is one running remote build machine.
type Machine struct {
	// Name is the machine's host name (what a build there reads from
	// /proc/sys/kernel/hostname).
	Name string
	// Addr is its address on the test's private subnet.
	Addr string
	// Dir holds everything of the machine; Dir/nix is its /nix.
	Dir string
	// ClientKey is the private key that logs in to it.
	ClientKey string
	// PublicHostKey is its SSH host public key, base64-encoded as the
	// machines syntax wants it.
	PublicHostKey string

	ns, outer string
	mu        sync.Mutex
	cmd       *exec.Cmd
	done      chan struct{}
	log       bytes.Buffer
}

var seq struct {
	sync.Mutex
	n int
}

// Start creates and starts a machine; everything is removed at the test's
// cleanup. It needs root, ip (iproute2), unshare, sshd and nix-daemon: a
// test skips without them, or fails when CI=true.
func Start(t testing.TB) *Machine {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "a remote build machine needs root (network and mount namespaces)")
	}
	for _, tool := range []string{"ip", "unshare", "ssh-keygen", "ssh", "nix-daemon"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, tool+" is not installed")
		}
	}
	sshd := "/usr/sbin/sshd"
	if _, err := os.Stat(sshd); err != nil {
		testenv.Missing(t, "sshd is not installed (Debian's openssh-server)")
	}
	daemon, _ := exec.LookPath("nix-daemon")

	m := &Machine{Dir: t.TempDir(), done: make(chan struct{})}
	// One /24 per machine in 10.233.0.0/16; the namespace name is the lock.
	seq.Lock()
	seq.n++
	start := (os.Getpid() + seq.n*7) % 250
	seq.Unlock()
	for i := range 250 {
		x := (start+i)%250 + 1
		ns := fmt.Sprintf("farmrb%d", x)
		if err := exec.Command("ip", "netns", "add", ns).Run(); err != nil {
			continue
		}
		if out, _ := exec.Command("ip", "-4", "route", "show", "match", fmt.Sprintf("10.233.%d.0/24", x)).Output(); strings.Contains(string(out), "10.233.") {
			_ = exec.Command("ip", "netns", "del", ns).Run()
			continue
		}
		m.ns, m.outer, m.Addr = ns, fmt.Sprintf("frbo%d", x), fmt.Sprintf("10.233.%d.2", x)
		m.Name = fmt.Sprintf("farm-remote-%d", x)
		subnet := fmt.Sprintf("10.233.%d.0/24", x)
		t.Cleanup(func() {
			m.Stop()
			_ = exec.Command("ip", "netns", "del", ns).Run()
			_ = exec.Command("ip", "link", "del", m.outer).Run()
			_ = exec.Command("ip", "route", "del", "unreachable", subnet, "metric", "4000").Run()
		})
		inner := fmt.Sprintf("frbi%d", x)
		run(t, "ip", "link", "add", m.outer, "type", "veth", "peer", "name", inner)
		run(t, "ip", "link", "set", inner, "netns", ns)
		run(t, "ip", "addr", "add", fmt.Sprintf("10.233.%d.1/24", x), "dev", m.outer)
		run(t, "ip", "link", "set", m.outer, "up")
		// Once the link is gone (Remove), the subnet is unreachable rather
		// than routed to whatever network this machine sits on.
		run(t, "ip", "route", "add", "unreachable", subnet, "metric", "4000")
		run(t, "ip", "-n", ns, "addr", "add", m.Addr+"/24", "dev", inner)
		run(t, "ip", "-n", ns, "link", "set", inner, "up")
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
		break
	}
	if m.ns == "" {
		t.Fatal("no free 10.233.x.0/24 subnet for a remote build machine")
	}

	for _, d := range []string{"nix/store", "nix/var/nix", "etc", "/run/sshd"} {
		if !filepath.IsAbs(d) {
			d = filepath.Join(m.Dir, d)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	hostKey := filepath.Join(m.Dir, "ssh_host_ed25519_key")
	m.ClientKey = filepath.Join(m.Dir, "client_key")
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", m.Name, "-f", hostKey)
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "farm-test", "-f", m.ClientKey)
	hostPub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	m.PublicHostKey = base64.StdEncoding.EncodeToString(hostPub)
	clientPub, err := os.ReadFile(m.ClientKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}

	// The only thing the key may do: speak the Nix daemon protocol to the
	// machine's own store, configured like every test's Nix.
	write(t, filepath.Join(m.Dir, "etc", "nix.conf"), "build-users-group =\nsandbox = false\nsubstituters =\n", 0o644)
	command := filepath.Join(m.Dir, "nix-daemon-stdio")
	write(t, command, fmt.Sprintf("#!/bin/sh\nexport NIX_CONF_DIR=%s\nexec %s --stdio\n", filepath.Join(m.Dir, "etc"), daemon), 0o755)
	write(t, filepath.Join(m.Dir, "authorized_keys"),
		fmt.Sprintf("restrict,command=%q %s", command, clientPub), 0o600)
	write(t, filepath.Join(m.Dir, "sshd_config"), strings.Join([]string{
		"ListenAddress " + m.Addr,
		"HostKey " + hostKey,
		"PidFile " + filepath.Join(m.Dir, "sshd.pid"),
		"AuthorizedKeysFile " + filepath.Join(m.Dir, "authorized_keys"),
		"PermitRootLogin prohibit-password",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"UseDNS no",
		"StrictModes no",
		"ForceCommand " + command,
		"",
	}, "\n"), 0o600)

	script := fmt.Sprintf("hostname %s && mount --bind %s /nix && exec %s -D -e -f %s",
		m.Name, filepath.Join(m.Dir, "nix"), sshd, filepath.Join(m.Dir, "sshd_config"))
	cmd := exec.Command("ip", "netns", "exec", m.ns, "unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script)
	cmd.Stdout, cmd.Stderr = &lockedWriter{m: m}, &lockedWriter{m: m}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	m.cmd = cmd
	go func() { _ = cmd.Wait(); close(m.done) }()

	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(m.Log(), "Server listening on") {
		select {
		case <-m.done:
			t.Fatalf("sshd of %s exited:\n%s", m.Name, m.Log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd of %s did not listen within a minute:\n%s", m.Name, m.Log())
		}
	}
	return m
}

// URI is the machine's ssh-ng store URI.
func (m *Machine) URI() string { return "ssh-ng://root@" + m.Addr }

// Spec is the machine's line in Nix's machines syntax for system, with its
// key and its host key, so that no known_hosts is involved.
func (m *Machine) Spec(system string) string {
	return fmt.Sprintf("%s %s %s 1 1 - - %s", m.URI(), system, m.ClientKey, m.PublicHostKey)
}

// Store is the machine's /nix/store as seen from the test.
func (m *Machine) Store() string { return filepath.Join(m.Dir, "nix", "store") }

// Has reports whether storePath is in the machine's own store.
func (m *Machine) Has(storePath string) bool {
	_, err := os.Lstat(filepath.Join(m.Store(), filepath.Base(storePath)))
	return err == nil
}

// Log is sshd's output so far.
func (m *Machine) Log() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.log.String()
}

// Stop stops sshd (and its connections): the machine refuses connections.
func (m *Machine) Stop() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.done
	}
}

// Remove stops sshd and deletes the machine's namespace and link: its
// address becomes unreachable.
func (m *Machine) Remove(t testing.TB) {
	t.Helper()
	m.Stop()
	run(t, "ip", "netns", "del", m.ns)
	_ = exec.Command("ip", "link", "del", m.outer).Run() // gone with its peer
}

type lockedWriter struct{ m *Machine }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	return w.m.log.Write(p)
}

func run(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func write(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}
