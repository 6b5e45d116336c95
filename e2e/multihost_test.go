package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/notify"
	"github.com/homelab-farm/farm/internal/testenv/fleettest"
)

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
	// h2's NIC, on loopback.
	nic, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer nic.Close()
	hosts := map[string]fleettest.Host{
		"h1": {System: "x86_64-linux", Version: "1"},
		"h2": {System: "x86_64-linux", Version: "1"},
	}
	lab := newFleetLab(t, hosts, labOptions{
		wake: map[string]notify.WakeTarget{"h2": {MAC: "02:00:5e:10:00:02", Address: nic.LocalAddr().String()}},
	})
	base, hp, titles := lab.base, lab.hosts, lab.ntfy.Titles
	push := func(hosts map[string]fleettest.Host, msg string) (time.Time, map[string]string) {
		t.Helper()
		start := time.Now()
		lab.push(t, hosts, msg)
		return start, lab.waitDesired(t, msg, "h1", "h2")
	}
	waitHost := func(name, result, path string) hostView {
		t.Helper()
		return lab.waitHost(t, name, result, path)
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
	// The rollback halts the rollout: one notification says so, naming
	// h1, and none repeats it as a rolled-back deploy.
	waitUntil(t, 30*time.Second, "ntfy told of the halt", func() bool {
		return strings.Contains(strings.Join(titles(), "\n"), "Rollout halted: ")
	})
	if all := strings.Join(titles(), "\n"); strings.Contains(all, "Deploy rolled back: h1") {
		t.Errorf("the halt's rollback was told twice:\n%s", all)
	}

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
	// Notifications: one halt (h1's rollback), one recovery, nothing else.
	if got := titles(); len(got) != 2 || !strings.HasPrefix(got[0], "Rollout halted: ") || got[1] != "Deploy recovered: h1" {
		t.Errorf("ntfy got:\n%s\nwant:\nRollout halted: …\nDeploy recovered: h1", strings.Join(got, "\n"))
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
	proxyLn, err := net.Listen("tcp", lab.net.addr(1)+":0")
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
		cmd := exec.Command("ip", append([]string{"netns", "exec", hp["h1"].ns, filepath.Join(binDir, "agent")}, onceArgs...)...)
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
