package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/notify"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
	"github.com/homelab-farm/farm/internal/testenv/ntfytest"
)

// netLab is a bridge in the test's network namespace and one network
// namespace per host, each with its own address on the bridge. Nothing in
// it reaches any other network.
type netLab struct {
	bridge  string
	subnet  string // "10.N.M"
	hostsNS map[string]string
}

func run1(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// labs numbers the labs of this process: each gets its own bridge,
// interface names and subnet, so that tests running in parallel never
// share one.
var labs atomic.Int32

func newNetLab(t *testing.T, hosts ...string) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.Missing(t, "iproute2 (ip) is not installed")
	}
	id, seq := os.Getpid()%100000, int(labs.Add(1))%10
	lab := &netLab{bridge: fmt.Sprintf("fbr%d%d", id, seq), subnet: fmt.Sprintf("10.%d.%d", 231+seq, id%250+1), hostsNS: map[string]string{}}
	if out, err := exec.Command("ip", "link", "add", lab.bridge, "type", "bridge").CombinedOutput(); err != nil {
		testenv.Missing(t, fmt.Sprintf("cannot create a bridge: %v %s", err, out))
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", lab.bridge).Run() })
	run1(t, "ip", "addr", "add", lab.subnet+".1/24", "dev", lab.bridge)
	run1(t, "ip", "link", "set", lab.bridge, "up")
	for i, h := range hosts {
		ns := fmt.Sprintf("farm%d-%d-%s", id, seq, h)
		outer, inner := fmt.Sprintf("fv%d%d%c", id, seq, 'a'+i), fmt.Sprintf("fh%d%d%c", id, seq, 'a'+i)
		run1(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		run1(t, "ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
		run1(t, "ip", "link", "set", inner, "netns", ns)
		run1(t, "ip", "link", "set", outer, "master", lab.bridge)
		run1(t, "ip", "link", "set", outer, "up")
		run1(t, "ip", "-n", ns, "addr", "add", fmt.Sprintf("%s.%d/24", lab.subnet, i+2), "dev", inner)
		run1(t, "ip", "-n", ns, "link", "set", inner, "up")
		run1(t, "ip", "-n", ns, "link", "set", "lo", "up")
		lab.hostsNS[h] = ns
	}
	return lab
}

func (lab *netLab) addr(i int) string { return fmt.Sprintf("%s.%d", lab.subnet, i) }

// hostProc is one host: its chroot store, links, state and agent process.
type hostProc struct {
	name, ns, dir, listen string
	args                  []string
	env                   []string
	cmd                   *exec.Cmd
	done                  chan error
	mu                    sync.Mutex
	logMu                 sync.Mutex
	log                   bytes.Buffer
}

func (h *hostProc) start(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.ns, filepath.Join(binDir, "agent")}, h.args...)...)
	cmd.Env = h.env
	w := &syncWriter{mu: &h.logMu, b: &h.log}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.cmd, h.done = cmd, make(chan error, 1)
	go func() { h.done <- cmd.Wait() }()
}

func (h *hostProc) stop() {
	h.mu.Lock()
	cmd, done := h.cmd, h.done
	h.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	h.mu.Lock()
	h.cmd = nil
	h.mu.Unlock()
}

// restart stops the agent and starts it again with extra arguments after
// its own (a later flag wins), as when its host's configuration changes.
func (h *hostProc) restart(t *testing.T, extra ...string) {
	t.Helper()
	h.stop()
	h.args = append(h.args, extra...)
	h.start(t)
}

func (h *hostProc) logs() string {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	return h.log.String()
}

func (h *hostProc) activations(t *testing.T) []string {
	b, err := os.ReadFile(filepath.Join(h.dir, "activations.log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "_"))
}

func (h *hostProc) currentSystem(t *testing.T) string {
	t.Helper()
	p, err := os.Readlink(filepath.Join(h.dir, "run", "current-system"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// profile is the system profile's target: what the next boot runs.
func (h *hostProc) profile(t *testing.T) string {
	t.Helper()
	link := filepath.Join(h.dir, "profiles", "system")
	gen, err := os.Readlink(link)
	if err != nil {
		t.Fatal(err)
	}
	p, err := os.Readlink(filepath.Join(filepath.Dir(link), gen))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type syncWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// hostView is the builder's /api/hosts/{host}.
type hostView struct {
	DesiredPath string `json:"desired_path"`
	DesiredSeq  uint64 `json:"desired_seq"`
	CurrentPath string `json:"current_path"`
	LastResult  string `json:"last_result"`
	LastReason  string `json:"last_reason"`
}

// getHost returns the builder's view of host; a host the builder does not
// know yet is the zero view.
func getHost(base, host string) (hostView, error) {
	var v hostView
	resp, err := http.Get(base + "/api/hosts/" + host)
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return v, json.NewDecoder(resp.Body).Decode(&v)
	case http.StatusNotFound:
		return v, nil
	}
	return v, fmt.Errorf("%s", resp.Status)
}

// fleetLab is a farm in network namespaces: the real builder on the lab's
// bridge, one real agent process per host, each in its own namespace with
// its own address and its own Nix store, and the notifier (in this
// process) poking the agents and publishing to a test ntfy server.
type fleetLab struct {
	net   *netLab
	dir   string
	base  string // the builder, on the bridge
	repo  *fleettest.Repo
	names []string // the hosts, sorted
	hosts map[string]*hostProc
	ntfy  *ntfytest.Server
	// adminToken is the file with the builder's admin token.
	adminToken string
	lastSeq    map[string]uint64
}

// labOptions are what tests set up differently.
type labOptions struct {
	builderArgs []string                     // more `builder serve` arguments
	wake        map[string]notify.WakeTarget // the notifier's Wake-on-LAN targets
}

// labSecret is the lab's webhook secret.
const labSecret = "lab-webhook-secret"

// newFleetLab starts a lab for fleet, every agent running. An agent checks
// at start and when poked (its interval is an hour); its health check fails
// on a closure whose version contains "bad".
func newFleetLab(t *testing.T, fleet map[string]fleettest.Host, opts labOptions) *fleetLab {
	t.Helper()
	env := testenv.Nix(t)
	names := make([]string, 0, len(fleet))
	for name := range fleet {
		names = append(names, name)
	}
	slices.Sort(names)
	lab := &fleetLab{net: newNetLab(t, names...), dir: t.TempDir(), repo: fleettest.New(t, fleet), names: names,
		hosts: map[string]*hostProc{}, lastSeq: map[string]uint64{}}
	dir := lab.dir
	cacheKey, _ := cache.GenerateKey("farm-lab-cache-1")
	deployKey, _ := cache.GenerateKey("farm-lab-deploy-1")
	files := map[string]string{
		"gh": labSecret + "\n", "cache.key": cacheKey.String(), "deploy.key": deployKey.String(),
		"deploy.pub": deployKey.Public().String() + "\n", "poke-token": "lab-poke-token\n", "admin-token": "lab-admin-token\n",
	}
	for _, name := range names {
		files["agents/"+name] = name + "-token\n"
	}
	for name, v := range files {
		p := filepath.Join(dir, name)
		_ = os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	lab.adminToken = filepath.Join(dir, "admin-token")
	builderAddr := lab.net.addr(1) + ":" + freePortOn(t, lab.net.addr(1))
	lab.base = "http://" + builderAddr
	config := fmt.Sprintf(`signing_key_file = %q
deploy_key_file = %q
public_url = %q
[[repository]]
name = "fleet"
deploy_branch = "main"
  [[repository.remote]]
  forge = "github"
  url = "https://github.com/alice/homelab"
  clone_url = %q
  secret_files = [%q]
`, filepath.Join(dir, "cache.key"), filepath.Join(dir, "deploy.key"), lab.base, lab.repo.Dir, filepath.Join(dir, "gh"))
	if err := os.WriteFile(filepath.Join(dir, "builder.toml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	lab.startBuilder(t, env, append([]string{"serve", "--config", filepath.Join(dir, "builder.toml"),
		"--state-dir", filepath.Join(dir, "state"), "--listen", builderAddr, "--workers", "1",
		"--agent-tokens-dir", filepath.Join(dir, "agents"), "--admin-token-file", lab.adminToken}, opts.builderArgs...))

	agents := map[string]string{}
	for i, name := range names {
		hdir := filepath.Join(dir, "host-"+name)
		h := &hostProc{name: name, ns: lab.net.hostsNS[name], dir: hdir, listen: lab.net.addr(i + 2)}
		root := filepath.Join(hdir, "root")
		current := filepath.Join(hdir, "run", "current-system")
		_ = os.MkdirAll(filepath.Dir(current), 0o755)
		h.args = []string{
			"--builder-url", lab.base, "--host", name, "--token-file", filepath.Join(dir, "agents", name),
			"--deploy-public-key-file", filepath.Join(dir, "deploy.pub"),
			"--cache-url", lab.base + "/nix-cache", "--cache-public-key", cacheKey.Public().String(),
			"--interval", "1h", "--keep-generations", "3", "--switch-mode", "switch",
			"--health-check", fmt.Sprintf(`! grep -q bad "%s$(readlink %s)/version"`, root, current),
			"--systemd-health=false",
			"--current-system", current, "--profile", filepath.Join(hdir, "profiles", "system"),
			"--store", "local?root=" + root, "--state-dir", filepath.Join(hdir, "state"),
			"--listen", h.listen + ":7741", "--poke-token-file", filepath.Join(dir, "poke-token"),
		}
		h.env = append(append([]string(nil), env...), "FARM_ACTIVATION_LOG="+filepath.Join(hdir, "activations.log"))
		h.start(t)
		t.Cleanup(func() {
			h.stop()
			if t.Failed() {
				t.Logf("agent %s log:\n%s", name, h.logs())
			}
		})
		lab.hosts[name] = h
		agents[name] = "http://" + h.listen + ":7741"
	}

	lab.ntfy = ntfytest.New(t)
	ncfg := notify.Config{WakeOnLAN: opts.wake, Agents: agents, WakeTimeout: "2m"}
	if err := ncfg.Validate(); err != nil {
		t.Fatal(err)
	}
	pub, err := notify.NewNtfy(lab.ntfy.URL, "farm", notify.NtfyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nt, err := notify.New(notify.Options{Config: ncfg, BuilderURLs: []string{lab.base}, StateDir: filepath.Join(dir, "notifier"),
		Publisher: pub, PokeToken: "lab-poke-token", PollEvery: 200 * time.Millisecond, MagicEvery: 2 * time.Second,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	nctx, ncancel := context.WithCancel(context.Background())
	ndone := make(chan error, 1)
	go func() { ndone <- nt.Run(nctx) }()
	t.Cleanup(func() { ncancel(); <-ndone })
	return lab
}

// startBuilder runs the builder with args until the test ends, and waits
// until it answers.
func (lab *fleetLab) startBuilder(t *testing.T, env, args []string) {
	t.Helper()
	logs := &testenv.Buffer{}
	cmd := exec.Command(filepath.Join(binDir, "builder"), args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("builder log:\n%s", logs.String())
		}
	})
	waitUntil(t, 30*time.Second, "builder answers", func() bool {
		resp, err := http.Get(lab.base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
}

// push commits fleet to main and sends the webhook; it returns the commit.
func (lab *fleetLab) push(t *testing.T, fleet map[string]fleettest.Host, msg string) string {
	t.Helper()
	commit := lab.repo.Commit(t, fleet, msg)
	postPush(t, lab.base, "main", commit, "lab-"+commit, []byte(labSecret))
	return commit
}

// waitDesired waits until each of hosts has a desired closure newer than
// the last one this lab saw, and returns them.
func (lab *fleetLab) waitDesired(t *testing.T, what string, hosts ...string) map[string]string {
	t.Helper()
	want := map[string]string{}
	seqs := map[string]uint64{}
	waitUntil(t, 4*time.Minute, "desired closures of "+what, func() bool {
		for _, name := range hosts {
			v, err := getHost(lab.base, name)
			if err != nil || v.DesiredSeq <= lab.lastSeq[name] {
				return false
			}
			want[name], seqs[name] = v.DesiredPath, v.DesiredSeq
		}
		return true
	})
	for name, seq := range seqs {
		lab.lastSeq[name] = seq
	}
	return want
}

// waitHost waits for the host's report; "switched" is also met by a later
// "up-to-date" on the same path (a second poke, say).
func (lab *fleetLab) waitHost(t *testing.T, name, result, path string) hostView {
	t.Helper()
	var v hostView
	waitUntil(t, 3*time.Minute, name+" "+result, func() bool {
		var err error
		v, err = getHost(lab.base, name)
		ok := v.LastResult == result || (result == "switched" && v.LastResult == "up-to-date")
		return err == nil && ok && v.CurrentPath == path
	})
	return v
}
