package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/forge/github"
	"github.com/homelab-farm/farm/internal/notify"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
	"github.com/homelab-farm/farm/internal/testenv/ntfytest"
)

// TestMain lets the test binary run as the agent itself, so the multi-host
// test can start real agent processes inside network namespaces.
func TestMain(m *testing.M) {
	if os.Getenv("FARM_TEST_RUN_AGENT") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// netLab is a bridge in the test's network namespace and one network
// namespace per host, each with its own address on the bridge. Nothing in
// it reaches any other network.
type netLab struct {
	bridge  string
	subnet  string // "10.231.N"
	hostsNS map[string]string
}

func run1(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newNetLab(t *testing.T, hosts ...string) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.Missing(t, "iproute2 (ip) is not installed")
	}
	id := os.Getpid() % 100000
	lab := &netLab{bridge: fmt.Sprintf("fbr%d", id), subnet: fmt.Sprintf("10.231.%d", id%250+1), hostsNS: map[string]string{}}
	if out, err := exec.Command("ip", "link", "add", lab.bridge, "type", "bridge").CombinedOutput(); err != nil {
		testenv.Missing(t, fmt.Sprintf("cannot create a bridge: %v %s", err, out))
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", lab.bridge).Run() })
	run1(t, "ip", "addr", "add", lab.subnet+".1/24", "dev", lab.bridge)
	run1(t, "ip", "link", "set", lab.bridge, "up")
	for i, h := range hosts {
		ns := fmt.Sprintf("farm%d-%s", id, h)
		outer, inner := fmt.Sprintf("fv%d%c", id, 'a'+i), fmt.Sprintf("fh%d%c", id, 'a'+i)
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

// freePort returns a TCP port free on ip right now.
func freePort(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

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
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.ns, os.Args[0]}, h.args...)...)
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

func getHost(base, host string) (hostView, error) {
	var v hostView
	resp, err := http.Get(base + "/api/hosts/" + host)
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("%s", resp.Status)
	}
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

// TestMultiHost runs the real builder, the notifier and one real agent
// process per host, each host in its own network namespace with its own
// address and its own Nix store:
//
//   - a push switches both hosts to their new closures;
//   - a host whose health check fails is back on exactly its previous
//     closure, the builder shows "rolled back" and ntfy was told;
//   - a stopped ("sleeping") host gets its Wake-on-LAN packet on a loopback
//     listener standing in for its NIC and, started again, applies the update;
//   - a push whose closures are already in the cache is measured from
//     webhook to every host switched.
func TestMultiHost(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-host deploy test: not in -short")
	}
	env := testenv.Nix(t)
	lab := newNetLab(t, "h1", "h2")
	dir := t.TempDir()

	// The builder binary.
	bin := filepath.Join(dir, "builder")
	build := exec.Command("go", "build", "-o", bin, "../builder")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build builder: %v\n%s", err, out)
	}

	hosts := map[string]fleettest.Host{
		"h1": {System: "x86_64-linux", Version: "1"},
		"h2": {System: "x86_64-linux", Version: "1"},
	}
	repo := fleettest.New(t, hosts)
	cacheKey, _ := cache.GenerateKey("farm-mh-cache-1")
	deployKey, _ := cache.GenerateKey("farm-mh-deploy-1")
	ghSecret := "mh-webhook-secret"
	files := map[string]string{
		"gh": ghSecret + "\n", "cache.key": cacheKey.String(), "deploy.key": deployKey.String(),
		"deploy.pub": deployKey.Public().String() + "\n", "poke-token": "mh-poke-token\n",
		"agents/h1": "h1-token\n", "agents/h2": "h2-token\n",
	}
	for name, v := range files {
		p := filepath.Join(dir, name)
		_ = os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	builderAddr := lab.addr(1) + ":" + freePort(t, lab.addr(1))
	base := "http://" + builderAddr
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
`, filepath.Join(dir, "cache.key"), filepath.Join(dir, "deploy.key"), base, repo.Dir, filepath.Join(dir, "gh"))
	if err := os.WriteFile(filepath.Join(dir, "builder.toml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	var builderLog bytes.Buffer
	var builderMu sync.Mutex
	bcmd := exec.Command(bin, "serve", "--config", filepath.Join(dir, "builder.toml"), "--state-dir", filepath.Join(dir, "state"),
		"--listen", builderAddr, "--workers", "1", "--agent-tokens-dir", filepath.Join(dir, "agents"))
	bcmd.Env = env
	bw := &syncWriter{mu: &builderMu, b: &builderLog}
	bcmd.Stdout, bcmd.Stderr = bw, bw
	if err := bcmd.Start(); err != nil {
		t.Fatal(err)
	}
	bdone := make(chan error, 1)
	go func() { bdone <- bcmd.Wait() }()
	t.Cleanup(func() {
		_ = bcmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-bdone:
		case <-time.After(20 * time.Second):
			_ = bcmd.Process.Kill()
		}
		if t.Failed() {
			builderMu.Lock()
			t.Logf("builder log:\n%s", builderLog.String())
			builderMu.Unlock()
		}
	})
	waitUntil(t, 30*time.Second, "builder answers", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})

	// The agents, one per namespace.
	hp := map[string]*hostProc{}
	for i, name := range []string{"h1", "h2"} {
		hdir := filepath.Join(dir, "host-"+name)
		h := &hostProc{name: name, ns: lab.hostsNS[name], dir: hdir, listen: lab.addr(i + 2)}
		root := filepath.Join(hdir, "root")
		current := filepath.Join(hdir, "run", "current-system")
		_ = os.MkdirAll(filepath.Dir(current), 0o755)
		h.args = []string{
			"--builder-url", base, "--host", name, "--token-file", filepath.Join(dir, "agents", name),
			"--deploy-public-key-file", filepath.Join(dir, "deploy.pub"),
			"--cache-url", base + "/nix-cache", "--cache-public-key", cacheKey.Public().String(),
			"--interval", "1h", "--keep-generations", "3", "--switch-mode", "switch",
			"--health-check", fmt.Sprintf(`! grep -q bad "%s$(readlink %s)/version"`, root, current),
			"--systemd-health=false",
			"--current-system", current, "--profile", filepath.Join(hdir, "profiles", "system"),
			"--store", "local?root=" + root, "--state-dir", filepath.Join(hdir, "state"),
			"--listen", h.listen + ":7741", "--poke-token-file", filepath.Join(dir, "poke-token"),
		}
		h.env = append(append([]string(nil), env...), "FARM_TEST_RUN_AGENT=1", "FARM_ACTIVATION_LOG="+filepath.Join(hdir, "activations.log"))
		h.start(t)
		t.Cleanup(func() {
			h.stop()
			if t.Failed() {
				t.Logf("agent %s log:\n%s", name, h.logs())
			}
		})
		hp[name] = h
	}

	// The notifier, with a test ntfy server and h2's NIC on loopback.
	ntfy := ntfytest.New(t)
	titles := ntfy.Titles
	nic, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer nic.Close()
	ncfg := notify.Config{
		WakeOnLAN:   map[string]notify.WakeTarget{"h2": {MAC: "02:00:5e:10:00:02", Address: nic.LocalAddr().String()}},
		Agents:      map[string]string{"h1": "http://" + lab.addr(2) + ":7741", "h2": "http://" + lab.addr(3) + ":7741"},
		WakeTimeout: "2m",
	}
	if err := ncfg.Validate(); err != nil {
		t.Fatal(err)
	}
	pub, err := notify.NewNtfy(ntfy.URL, "farm", notify.NtfyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nt, err := notify.New(notify.Options{Config: ncfg, BuilderURLs: []string{base}, StateDir: filepath.Join(dir, "notifier"),
		Publisher: pub, PokeToken: "mh-poke-token", PollEvery: 200 * time.Millisecond, MagicEvery: 2 * time.Second,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	nctx, ncancel := context.WithCancel(context.Background())
	ndone := make(chan error, 1)
	go func() { ndone <- nt.Run(nctx) }()
	defer func() { ncancel(); <-ndone }()

	lastSeq := map[string]uint64{}
	push := func(hosts map[string]fleettest.Host, msg string) (time.Time, map[string]string) {
		t.Helper()
		commit := repo.Commit(t, hosts, msg)
		start := time.Now()
		sendPush(t, base, commit, ghSecret)
		want := map[string]string{}
		waitUntil(t, 4*time.Minute, "desired closures of "+msg, func() bool {
			for _, name := range []string{"h1", "h2"} {
				v, err := getHost(base, name)
				if err != nil || v.DesiredSeq <= lastSeq[name] {
					return false
				}
				want[name] = v.DesiredPath
			}
			return true
		})
		for _, name := range []string{"h1", "h2"} {
			v, _ := getHost(base, name)
			lastSeq[name] = v.DesiredSeq
		}
		return start, want
	}
	// waitHost waits for the host's report; "switched" is also met by a
	// later "up-to-date" on the same path (a second poke, say).
	waitHost := func(name, result, path string) hostView {
		t.Helper()
		var v hostView
		waitUntil(t, 3*time.Minute, name+" "+result, func() bool {
			var err error
			v, err = getHost(base, name)
			ok := v.LastResult == result || (result == "switched" && v.LastResult == "up-to-date")
			return err == nil && ok && v.CurrentPath == path
		})
		return v
	}

	// 1. A push switches both hosts.
	_, d1 := push(hosts, "first")
	waitHost("h1", "switched", d1["h1"])
	waitHost("h2", "switched", d1["h2"])

	// 2. h1's new closure fails its health check: back on exactly d1.
	hosts = map[string]fleettest.Host{"h1": {System: "x86_64-linux", Version: "bad-2"}, "h2": {System: "x86_64-linux", Version: "2"}}
	_, d2 := push(hosts, "second")
	if d2["h1"] == d1["h1"] || d2["h2"] == d1["h2"] {
		t.Fatalf("second push did not change the closures: %v %v", d1, d2)
	}
	v := waitHost("h1", "rolled back", d1["h1"])
	if !strings.Contains(v.LastReason, "health check") {
		t.Errorf("h1 rolled back for %q, want the health check", v.LastReason)
	}
	waitHost("h2", "switched", d2["h2"])
	staleManifest := getRaw(t, base+"/api/hosts/h1/manifest") // for a replay, later
	waitUntil(t, 30*time.Second, "ntfy told of the rollback", func() bool {
		return strings.Contains(strings.Join(titles(), "\n"), "Deploy rolled back: h1")
	})

	// 3. h2 sleeps; a push wakes it through Wake-on-LAN.
	hp["h2"].stop()
	hosts = map[string]fleettest.Host{"h1": {System: "x86_64-linux", Version: "3"}, "h2": {System: "x86_64-linux", Version: "3"}}
	_, d3 := push(hosts, "third")
	_ = nic.SetReadDeadline(time.Now().Add(2 * time.Minute))
	buf := make([]byte, 1500)
	n, _, err := nic.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no Wake-on-LAN packet for the sleeping h2: %v", err)
	}
	mac, _ := net.ParseMAC("02:00:5e:10:00:02")
	if want, _ := notify.MagicPacket(mac); !bytes.Equal(buf[:n], want) {
		t.Fatalf("packet %x is not h2's magic packet", buf[:n])
	}
	hp["h2"].start(t) // the host wakes
	waitHost("h2", "switched", d3["h2"])
	waitHost("h1", "switched", d3["h1"])
	waitUntil(t, 30*time.Second, "ntfy told of h1's recovery", func() bool {
		return strings.Contains(strings.Join(titles(), "\n"), "Deploy recovered: h1")
	})

	// 4. A push whose closures are all in the cache already: webhook to
	// every host switched.
	hosts = map[string]fleettest.Host{"h1": {System: "x86_64-linux", Version: "1"}, "h2": {System: "x86_64-linux", Version: "1"}}
	start, d4 := push(hosts, "back to the first closures")
	if d4["h1"] != d1["h1"] || d4["h2"] != d1["h2"] {
		t.Fatalf("fourth push: closures %v, want the first ones %v", d4, d1)
	}
	waitHost("h1", "switched", d1["h1"])
	waitHost("h2", "switched", d1["h2"])
	t.Logf("push to every host switched, closures already cached: %s", time.Since(start).Round(time.Millisecond))

	// Activations: each host activated exactly what it ran, in order.
	wantAct := map[string]int{"h1": 5, "h2": 4}
	for name, want := range wantAct {
		got := hp[name].activations(t)
		if len(got) != want || strings.Trim(strings.Repeat("activated_"+name+"_switch ", want), " ") != strings.Join(got, " ") {
			t.Errorf("%s activations = %v, want %d switches", name, got, want)
		}
	}
	// Notifications: one rollback, one recovery, nothing else.
	if got, want := strings.Join(titles(), "\n"), "Deploy rolled back: h1\nDeploy recovered: h1"; got != want {
		t.Errorf("ntfy got:\n%s\nwant:\n%s", got, want)
	}

	// More rounds of cached pushes for scripts/bench-deploy.
	if rounds := benchRounds(); rounds > 1 {
		times := []time.Duration{time.Since(start)}
		for i := 1; i < rounds; i++ {
			v := map[bool]string{true: "3", false: "1"}[i%2 == 1]
			hosts = map[string]fleettest.Host{"h1": {System: "x86_64-linux", Version: v}, "h2": {System: "x86_64-linux", Version: v}}
			start, d := push(hosts, "bench round "+fmt.Sprint(i))
			waitHost("h1", "switched", d["h1"])
			waitHost("h2", "switched", d["h2"])
			times = append(times, time.Since(start))
		}
		slices.Sort(times)
		t.Logf("BENCH deploy rounds=%d hosts=2 median=%s min=%s max=%s", rounds,
			times[len(times)/2].Round(time.Millisecond), times[0].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
	}

	// 5. Tampered, foreign-signed and replayed manifests change nothing:
	// h1's agent checks once through a proxy that serves them.
	hp["h1"].stop()
	before, _ := getHost(base, "h1")
	acts := len(hp["h1"].activations(t))
	other, _ := cache.GenerateKey("farm-mh-deploy-1") // same name, other key
	var mode string
	var modeMu sync.Mutex
	rp := httputil.NewSingleHostReverseProxy(mustURL(t, base))
	proxy := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		modeMu.Lock()
		m := mode
		modeMu.Unlock()
		if r.Method != http.MethodGet || r.URL.Path != "/api/hosts/h1/manifest" {
			rp.ServeHTTP(w, r)
			return
		}
		var body []byte
		switch m {
		case "tampered": // the genuine manifest, pointing at another closure
			body = bytes.ReplaceAll(getRaw(t, base+"/api/hosts/h1/manifest"), []byte(before.DesiredPath), []byte(d2["h1"]))
		case "foreign":
			sgn, err := deploy.Sign(deploy.Manifest{Host: "h1", StorePath: d2["h1"], Commit: "f00", Seq: 1 << 40, IssuedAt: time.Now(), Expires: time.Now().Add(time.Hour)}, other)
			if err != nil {
				t.Error(err)
			}
			body, _ = json.Marshal(sgn)
		case "replayed":
			body = staleManifest
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	proxyLn, err := net.Listen("tcp", lab.addr(1)+":0")
	if err != nil {
		t.Fatal(err)
	}
	proxy.Listener = proxyLn
	proxy.Start()
	defer proxy.Close()
	var onceArgs []string
	for i := 0; i < len(hp["h1"].args); i++ {
		switch a := hp["h1"].args[i]; a {
		case "--listen":
			i++
		case "--builder-url":
			onceArgs = append(onceArgs, a, proxy.URL)
			i++
		default:
			onceArgs = append(onceArgs, a)
		}
	}
	onceArgs = append(onceArgs, "--once")
	for _, m := range []string{"tampered", "foreign", "replayed"} {
		modeMu.Lock()
		mode = m
		modeMu.Unlock()
		cmd := exec.Command("ip", append([]string{"netns", "exec", hp["h1"].ns, os.Args[0]}, onceArgs...)...)
		cmd.Env = hp["h1"].env
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%s manifest: agent --once succeeded\n%s", m, out)
		}
		v, _ := getHost(base, "h1")
		if v.CurrentPath != before.CurrentPath || v.LastResult != "failed" || !strings.Contains(v.LastReason, "refused manifest") {
			t.Errorf("%s manifest: builder shows %+v, want failed (refused) on %s", m, v, before.CurrentPath)
		}
		if got := hp["h1"].currentSystem(t); got != before.CurrentPath {
			t.Errorf("%s manifest: h1 runs %s, want %s", m, got, before.CurrentPath)
		}
		if got := len(hp["h1"].activations(t)); got != acts {
			t.Errorf("%s manifest: %d activations, want %d", m, got, acts)
		}
	}
}

func benchRounds() int {
	n, err := strconv.Atoi(os.Getenv("FARM_BENCH_DEPLOY_ROUNDS"))
	if err != nil || n < 1 {
		return 1
	}
	return n
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func getRaw(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Error(err)
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

func (h *hostProc) currentSystem(t *testing.T) string {
	t.Helper()
	p, err := os.Readlink(filepath.Join(h.dir, "run", "current-system"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var sha1RE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// sendPush sends a signed GitHub push webhook for commit on main.
func sendPush(t *testing.T, base, commit, secret string) {
	t.Helper()
	if !sha1RE.MatchString(commit) {
		t.Fatalf("commit %q", commit)
	}
	raw, err := os.ReadFile("../../internal/forge/github/testdata/push.json")
	if err != nil {
		t.Fatal(err)
	}
	var payload map[string]any
	if err := json.Unmarshal(raw, &payload); err != nil {
		t.Fatal(err)
	}
	payload["after"], payload["before"], payload["ref"] = commit, strings.Repeat("0", 40), "refs/heads/main"
	body, _ := json.Marshal(payload)
	req, _ := http.NewRequest(http.MethodPost, base+"/hooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "mh-"+commit)
	req.Header.Set("X-Hub-Signature-256", github.Sign(body, []byte(secret)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %s %s", resp.Status, b)
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
