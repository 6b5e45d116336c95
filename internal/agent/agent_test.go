package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/file"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv"
)

// fakeBuilder serves one host's signed manifest, a real directory cache,
// and records the agent's reports.
type fakeBuilder struct {
	t     *testing.T
	srv   *httptest.Server
	token string

	mu       sync.Mutex
	manifest []byte // nil: 404
	reports  []farmapi.Report
	seq      uint64 // what GET /api/hosts/{host}/seq answers
	seqAsked int
}

func newFakeBuilder(t *testing.T, backend cache.Backend) *fakeBuilder {
	t.Helper()
	fb := &fakeBuilder{t: t, token: "host-token-123"}
	mux := http.NewServeMux()
	mux.Handle("/nix-cache/", http.StripPrefix("/nix-cache", cache.NewHandler(backend)))
	mux.HandleFunc("GET /api/hosts/{host}/manifest", func(w http.ResponseWriter, r *http.Request) {
		fb.mu.Lock()
		defer fb.mu.Unlock()
		if fb.manifest == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(fb.manifest)
	})
	mux.HandleFunc("GET /api/hosts/{host}/seq", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+fb.token {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		fb.mu.Lock()
		defer fb.mu.Unlock()
		fb.seqAsked++
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"seq":%d}`, fb.seq)
	})
	mux.HandleFunc("POST /api/hosts/{host}/report", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+fb.token {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		var o farmapi.Report
		if err := json.NewDecoder(r.Body).Decode(&o); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fb.mu.Lock()
		fb.reports = append(fb.reports, o)
		fb.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	fb.srv = httptest.NewServer(mux)
	t.Cleanup(fb.srv.Close)
	return fb
}

func (fb *fakeBuilder) serve(s deploy.Signed) {
	b, err := json.Marshal(s)
	if err != nil {
		fb.t.Fatal(err)
	}
	fb.serveRaw(b)
}

func (fb *fakeBuilder) serveRaw(b []byte) {
	fb.mu.Lock()
	fb.manifest = b
	fb.mu.Unlock()
}

func (fb *fakeBuilder) lastReport() farmapi.Report {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if len(fb.reports) == 0 {
		fb.t.Fatal("no report received")
	}
	return fb.reports[len(fb.reports)-1]
}

// fixture is one host: a chroot store, its current-system link, profile,
// state and activation log, and an agent for it.
type fixture struct {
	root, current, profile, stateDir, activations string
	cfg                                           Config
	client                                        *nix.Client
	fb                                            *fakeBuilder
	deployKey                                     cache.SecretKey
}

func newFixture(t *testing.T, fb *fakeBuilder, deployKey cache.SecretKey, cacheKey cache.PublicKey, env []string) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{
		root:        filepath.Join(dir, "root"),
		current:     filepath.Join(dir, "run", "current-system"),
		profile:     filepath.Join(dir, "profiles", "system"),
		stateDir:    filepath.Join(dir, "state"),
		activations: filepath.Join(dir, "activations.log"),
		fb:          fb,
		deployKey:   deployKey,
	}
	if err := os.MkdirAll(filepath.Dir(f.current), 0o755); err != nil {
		t.Fatal(err)
	}
	f.client = &nix.Client{Env: env}
	f.cfg = Config{
		Host:            "stolas",
		BuilderURLs:     []string{fb.srv.URL},
		Token:           fb.token,
		DeployKeys:      []cache.PublicKey{deployKey.Public()},
		CacheURL:        fb.srv.URL + "/nix-cache",
		CacheKey:        cacheKey.String(),
		SwitchMode:      ModeSwitch,
		HealthChecks:    []string{fmt.Sprintf(`test ! -e "%s$(readlink %s)/unhealthy"`, f.root, f.current)},
		KeepGenerations: 2,
		ClockSkew:       5 * time.Minute,
		CurrentSystem:   f.current,
		Profile:         f.profile,
		Store:           "local?root=" + f.root,
		StateDir:        f.stateDir,
		Env:             append(append([]string(nil), env...), "FARM_ACTIVATION_LOG="+f.activations),
	}
	if err := f.cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return f
}

// agent returns a fresh agent, as after a restart: only the state directory
// carries over.
func (f *fixture) agent() *Agent {
	return New(f.cfg, f.client, nil, slog.New(slog.DiscardHandler))
}

func (f *fixture) sign(t *testing.T, key cache.SecretKey, host, path string, seq uint64) deploy.Signed {
	t.Helper()
	now := time.Now().UTC()
	return f.signAt(t, key, host, path, seq, now, now.Add(72*time.Hour))
}

func (f *fixture) signAt(t *testing.T, key cache.SecretKey, host, path string, seq uint64, issued, expires time.Time) deploy.Signed {
	t.Helper()
	s, err := deploy.Sign(deploy.Manifest{Host: host, StorePath: path, Commit: "c0ffee", Seq: seq, IssuedAt: issued, Expires: expires}, key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) currentPath(t *testing.T) string {
	t.Helper()
	p, err := os.Readlink(f.current)
	if err != nil {
		t.Fatalf("read current system: %v", err)
	}
	return p
}

func (f *fixture) activationLog(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(f.activations)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func (f *fixture) profilePath(t *testing.T) string {
	t.Helper()
	gen, err := os.Readlink(f.profile)
	if err != nil {
		t.Fatalf("read profile: %v", err)
	}
	p, err := os.Readlink(filepath.Join(filepath.Dir(f.profile), gen))
	if err != nil {
		t.Fatalf("read profile generation: %v", err)
	}
	return p
}

// buildSystems builds the test closures named in names (name → extra
// nix-build args) and pushes them to the cache.
func buildSystems(client *nix.Client, p *cache.Pusher, names map[string][]string) (map[string]string, error) {
	ctx := context.Background()
	salt := fmt.Sprint(time.Now().UnixNano())
	paths := map[string]string{}
	var all []string
	for name, extra := range names {
		args := append([]string{"--argstr", "name", name, "--argstr", "salt", salt}, extra...)
		out, err := client.BuildFile(ctx, "testdata/system.nix", args...)
		if err != nil || len(out) != 1 {
			return nil, fmt.Errorf("build %s: %v %v", name, out, err)
		}
		paths[name] = out[0]
		all = append(all, out[0])
	}
	if _, err := p.Push(ctx, all...); err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	return paths, nil
}

type world struct {
	fb        *fakeBuilder
	deployKey cache.SecretKey
	cacheKey  cache.SecretKey
	env       []string
	paths     map[string]string
}

// systems are the test closures, built once per test binary and pushed to
// one directory cache that every world's fake builder serves.
var systems struct {
	once     sync.Once
	dir      string
	backend  cache.Backend
	cacheKey cache.SecretKey
	paths    map[string]string
	err      error
}

// TestMain removes the shared cache directory.
func TestMain(m *testing.M) {
	code := m.Run()
	if systems.dir != "" {
		os.RemoveAll(systems.dir)
	}
	os.Exit(code)
}

func newWorld(t *testing.T) *world {
	t.Helper()
	env := testenv.Nix(t)
	systems.once.Do(func() {
		if systems.dir, systems.err = os.MkdirTemp("", "agent-test-cache-"); systems.err != nil {
			return
		}
		if systems.backend, systems.err = file.Open(systems.dir); systems.err != nil {
			return
		}
		if systems.cacheKey, systems.err = cache.GenerateKey("farm-test-cache-1"); systems.err != nil {
			return
		}
		client := &nix.Client{Env: env}
		systems.paths, systems.err = buildSystems(client, &cache.Pusher{Backend: systems.backend, Key: systems.cacheKey, Store: client}, map[string][]string{
			"v1":        nil,
			"v2":        nil,
			"v3":        nil,
			"unhealthy": {"--argstr", "unhealthy", "true"},
			"broken":    {"--argstr", "failActivation", "true"},
		})
	})
	if systems.err != nil {
		t.Fatalf("test systems: %v", systems.err)
	}
	deployKey, err := cache.GenerateKey("farm-test-deploy-1")
	if err != nil {
		t.Fatal(err)
	}
	return &world{fb: newFakeBuilder(t, systems.backend), deployKey: deployKey, cacheKey: systems.cacheKey, env: env, paths: systems.paths}
}

func (w *world) fixture(t *testing.T) *fixture {
	return newFixture(t, w.fb, w.deployKey, w.cacheKey.Public(), w.env)
}

func check(t *testing.T, a *Agent) Outcome {
	t.Helper()
	out, err := a.Check(context.Background())
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return out
}

// TestDeploy walks one host through a life: first install, update, failed
// health check, failed activation, refused manifests, restart, pruning.
func TestDeploy(t *testing.T) {
	w := newWorld(t)
	f := w.fixture(t)
	p := w.paths

	// No manifest yet: nothing happens.
	if out := check(t, f.agent()); out.Result != farmapi.ResultUpToDate || out.Current != "" {
		t.Fatalf("no manifest: got %+v, want up-to-date with no current system", out)
	}

	steps := []struct {
		name        string
		serve       func() deploy.Signed
		raw         []byte // served instead of serve() when set
		want        Outcome
		activations []string // new lines in the activation log
	}{
		{
			name:        "first install",
			serve:       func() deploy.Signed { return f.sign(t, w.deployKey, "stolas", p["v1"], 1) },
			want:        Outcome{Current: p["v1"], Result: farmapi.ResultSwitched, Seq: 1},
			activations: []string{"activated v1 switch"},
		},
		{
			name:  "same manifest again is up to date",
			serve: func() deploy.Signed { return f.sign(t, w.deployKey, "stolas", p["v1"], 1) },
			want:  Outcome{Current: p["v1"], Result: farmapi.ResultUpToDate, Seq: 1},
		},
		{
			name:        "update",
			serve:       func() deploy.Signed { return f.sign(t, w.deployKey, "stolas", p["v2"], 5) },
			want:        Outcome{Current: p["v2"], Result: farmapi.ResultSwitched, Seq: 5},
			activations: []string{"activated v2 switch"},
		},
		{
			name:        "failed health check rolls back to exactly the previous path",
			serve:       func() deploy.Signed { return f.sign(t, w.deployKey, "stolas", p["unhealthy"], 6) },
			want:        Outcome{Current: p["v2"], Result: farmapi.ResultRolledBack, Seq: 6},
			activations: []string{"activated unhealthy switch", "activated v2 switch"},
		},
		{
			name:  "the rolled-back manifest is not tried again",
			serve: func() deploy.Signed { return f.sign(t, w.deployKey, "stolas", p["unhealthy"], 6) },
			want:  Outcome{Current: p["v2"], Result: farmapi.ResultRolledBack, Seq: 6},
		},
		{
			name:        "failed activation rolls back",
			serve:       func() deploy.Signed { return f.sign(t, w.deployKey, "stolas", p["broken"], 7) },
			want:        Outcome{Current: p["v2"], Result: farmapi.ResultRolledBack, Seq: 7},
			activations: []string{"activated broken switch", "activated v2 switch"},
		},
		{
			name:  "replayed older manifest changes nothing",
			serve: func() deploy.Signed { return f.sign(t, w.deployKey, "stolas", p["v1"], 1) },
			want:  Outcome{Current: p["v2"], Result: farmapi.ResultFailed, Seq: 7},
		},
		{
			name: "tampered manifest changes nothing",
			serve: func() deploy.Signed {
				s := f.sign(t, w.deployKey, "stolas", p["v1"], 8)
				s.Manifest = []byte(strings.Replace(string(s.Manifest), p["v1"], p["v3"], 1))
				return s
			},
			want: Outcome{Current: p["v2"], Result: farmapi.ResultFailed, Seq: 7},
		},
		{
			name: "manifest signed by another key changes nothing",
			serve: func() deploy.Signed {
				other, err := cache.GenerateKey("farm-test-deploy-1") // same name, other key
				if err != nil {
					t.Fatal(err)
				}
				return f.sign(t, other, "stolas", p["v3"], 9)
			},
			want: Outcome{Current: p["v2"], Result: farmapi.ResultFailed, Seq: 7},
		},
		{
			name:  "manifest for another host changes nothing",
			serve: func() deploy.Signed { return f.sign(t, w.deployKey, "malphas", p["v3"], 10) },
			want:  Outcome{Current: p["v2"], Result: farmapi.ResultFailed, Seq: 7},
		},
		{
			name: "garbage changes nothing",
			raw:  []byte(`{"manifest": 12`),
			want: Outcome{Current: p["v2"], Result: farmapi.ResultFailed, Seq: 7},
		},
		{
			name:        "next update after failures",
			serve:       func() deploy.Signed { return f.sign(t, w.deployKey, "stolas", p["v3"], 11) },
			want:        Outcome{Current: p["v3"], Result: farmapi.ResultSwitched, Seq: 11},
			activations: []string{"activated v3 switch"},
		},
		{
			name: "a renewal of the applied manifest is nothing to do",
			serve: func() deploy.Signed {
				now := time.Now().UTC()
				return f.signAt(t, w.deployKey, "stolas", p["v3"], 11, now.Add(time.Hour), now.Add(100*time.Hour))
			},
			want: Outcome{Current: p["v3"], Result: farmapi.ResultUpToDate, Seq: 11},
		},
		{
			name: "an expired manifest changes nothing",
			serve: func() deploy.Signed {
				now := time.Now().UTC()
				return f.signAt(t, w.deployKey, "stolas", p["v1"], 12, now.Add(-96*time.Hour), now.Add(-24*time.Hour))
			},
			want: Outcome{Current: p["v3"], Result: farmapi.ResultFailed, Seq: 11, Retry: true},
		},
		{
			name: "a manifest expired less than the clock skew ago is taken",
			serve: func() deploy.Signed {
				now := time.Now().UTC()
				return f.signAt(t, w.deployKey, "stolas", p["v1"], 12, now.Add(-72*time.Hour), now.Add(-time.Minute))
			},
			want:        Outcome{Current: p["v1"], Result: farmapi.ResultSwitched, Seq: 12},
			activations: []string{"activated v1 switch"},
		},
	}
	var log []string
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.raw != nil {
				w.fb.serveRaw(st.raw)
			} else {
				w.fb.serve(st.serve())
			}
			out := check(t, f.agent()) // a fresh agent each time: state is on disk
			got := out
			got.Reason = ""
			if got != st.want {
				t.Fatalf("outcome = %+v, want %+v", out, st.want)
			}
			if (st.want.Result == farmapi.ResultRolledBack || st.want.Result == farmapi.ResultFailed) && out.Reason == "" {
				t.Errorf("outcome %q has no reason", out.Result)
			}
			sent := out.Report() // Retry is not part of the report
			if rep := w.fb.lastReport(); rep != sent {
				t.Errorf("reported %+v, want %+v", rep, sent)
			}
			if got := f.currentPath(t); got != st.want.Current {
				t.Errorf("current system = %s, want %s", got, st.want.Current)
			}
			if got := f.profilePath(t); got != st.want.Current {
				t.Errorf("profile = %s, want %s", got, st.want.Current)
			}
			log = append(log, st.activations...)
			if got := f.activationLog(t); strings.Join(got, "\n") != strings.Join(log, "\n") {
				t.Errorf("activation log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(log, "\n"))
			}
		})
	}

	t.Run("generations pruned", func(t *testing.T) {
		gens, err := f.client.Generations(context.Background(), f.cfg.Store, f.profile)
		if err != nil {
			t.Fatal(err)
		}
		if len(gens) != f.cfg.KeepGenerations || !gens[len(gens)-1].Current {
			t.Errorf("generations = %+v, want %d with the newest current", gens, f.cfg.KeepGenerations)
		}
	})
}

// TestRealiseFailureRetries: a manifest whose closure the cache does not
// have (or signed by a key the host does not trust for the cache) changes
// nothing and is tried again at the next check.
func TestRealiseFailureRetries(t *testing.T) {
	w := newWorld(t)
	f := w.fixture(t)
	wrongKey, err := cache.GenerateKey("farm-test-cache-1")
	if err != nil {
		t.Fatal(err)
	}
	good := f.cfg
	f.cfg.CacheKey = wrongKey.Public().String()
	w.fb.serve(f.sign(t, w.deployKey, "stolas", w.paths["v1"], 3))
	out := check(t, f.agent())
	if out.Result != farmapi.ResultFailed || out.Current != "" || !strings.Contains(out.Reason, "signature") {
		t.Fatalf("untrusted cache: got %+v, want failed for lack of a valid signature", out)
	}
	if _, err := os.Lstat(f.current); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("current system exists after a failed realise: %v", err)
	}
	f.cfg = good
	if out := check(t, f.agent()); out.Result != farmapi.ResultSwitched || out.Current != w.paths["v1"] {
		t.Fatalf("retry with the right key: got %+v, want switched to v1", out)
	}
}

// TestWipedStateRefusesOlderManifest: an agent that lost its state
// directory asks the builder for the host's seq, and a validly signed,
// unexpired but older manifest (a replay) changes nothing; the current
// one is then applied, and with state again the builder is not asked.
func TestWipedStateRefusesOlderManifest(t *testing.T) {
	w := newWorld(t)
	f := w.fixture(t)
	w.fb.mu.Lock()
	w.fb.seq = 9
	w.fb.mu.Unlock()

	w.fb.serve(f.sign(t, w.deployKey, "stolas", w.paths["v1"], 5))
	out := check(t, f.agent())
	if out.Result != farmapi.ResultFailed || out.Current != "" || !out.Retry || !strings.Contains(out.Reason, "below the host's seq 9") {
		t.Fatalf("older manifest after a wiped state: got %+v, want failed below seq 9, retried", out)
	}
	if _, err := os.Lstat(f.current); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("current system exists after a refused manifest: %v", err)
	}
	if got := f.activationLog(t); len(got) != 0 {
		t.Errorf("activations after a refused manifest: %q", got)
	}

	w.fb.serve(f.sign(t, w.deployKey, "stolas", w.paths["v2"], 9))
	if out := check(t, f.agent()); out.Result != farmapi.ResultSwitched || out.Current != w.paths["v2"] {
		t.Fatalf("current manifest: got %+v, want switched to v2", out)
	}
	w.fb.mu.Lock()
	asked := w.fb.seqAsked
	w.fb.mu.Unlock()
	check(t, f.agent())
	w.fb.mu.Lock()
	defer w.fb.mu.Unlock()
	if asked != 2 || w.fb.seqAsked != asked {
		t.Errorf("builder asked for the seq %d times, then %d; want 2 (both checks without state), then no more", asked, w.fb.seqAsked)
	}
}

// TestWipedStateBuilderSeqUnavailable: without state, a builder that does
// not say the host's seq makes the check fail (to be retried), not take
// whatever manifest it is handed.
func TestWipedStateBuilderSeqUnavailable(t *testing.T) {
	w := newWorld(t)
	f := w.fixture(t)
	w.fb.serve(f.sign(t, w.deployKey, "stolas", w.paths["v1"], 5))
	f.cfg.Token = "not-the-host-token" // the fake builder answers 401
	if out, err := f.agent().Check(context.Background()); err == nil {
		t.Fatalf("Check = %+v, nil; want an error", out)
	}
	if _, err := os.Lstat(f.current); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("current system exists: %v", err)
	}
}

// TestBootMode installs for the next boot without touching the running
// system or running health checks.
func TestBootMode(t *testing.T) {
	w := newWorld(t)
	f := w.fixture(t)
	f.cfg.SwitchMode = ModeBoot
	w.fb.serve(f.sign(t, w.deployKey, "stolas", w.paths["unhealthy"], 1))
	out := check(t, f.agent())
	if out.Result != farmapi.ResultSwitched {
		t.Fatalf("boot mode: got %+v, want switched", out)
	}
	if got := f.profilePath(t); got != w.paths["unhealthy"] {
		t.Errorf("profile = %s, want %s", got, w.paths["unhealthy"])
	}
	if _, err := os.Lstat(f.current); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("boot mode changed the current system: %v", err)
	}
	if got := f.activationLog(t); len(got) != 1 || got[0] != "activated unhealthy boot" {
		t.Errorf("activation log = %q, want one boot activation", got)
	}
}

func TestPokeHandler(t *testing.T) {
	pokes := make(chan Poke, 1)
	srv := httptest.NewServer(PokeHandler([]byte("poke-secret"), pokes))
	defer srv.Close()
	tests := []struct {
		name   string
		auth   string
		body   string
		status int
		poked  bool
		woken  bool
	}{
		{"no token", "", "", http.StatusUnauthorized, false, false},
		{"wrong token", "Bearer nope", "", http.StatusUnauthorized, false, false},
		{"poke", "Bearer poke-secret", "", http.StatusAccepted, true, false},
		{"woken", "Bearer poke-secret", `{"woken":true}`, http.StatusAccepted, true, true},
		{"malformed", "Bearer poke-secret", `{`, http.StatusBadRequest, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/poke", strings.NewReader(tt.body))
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			select {
			case p := <-pokes:
				if !tt.poked || p.Woken != tt.woken {
					t.Errorf("got poke %+v, want poked=%v woken=%v", p, tt.poked, tt.woken)
				}
			default:
				if tt.poked {
					t.Error("no poke delivered")
				}
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	key, _ := cache.GenerateKey("k-1")
	base := func() Config {
		return Config{Host: "h", BuilderURLs: []string{"http://b"}, DeployKeys: []cache.PublicKey{key.Public()},
			CacheKey: key.Public().String(), KeepGenerations: 1, CurrentSystem: "/c", Profile: "/p", StateDir: "/s"}
	}
	tests := []struct {
		name   string
		modify func(*Config)
		ok     bool
	}{
		{"valid", func(*Config) {}, true},
		{"no host", func(c *Config) { c.Host = "" }, false},
		{"relative builder URL", func(c *Config) { c.BuilderURLs = []string{"builder"} }, false},
		{"no builder URL", func(c *Config) { c.BuilderURLs = nil }, false},
		{"a second builder URL that is relative", func(c *Config) { c.BuilderURLs = append(c.BuilderURLs, "b2") }, false},
		{"no deploy key", func(c *Config) { c.DeployKeys = nil }, false},
		{"bad cache key", func(c *Config) { c.CacheKey = "nope" }, false},
		{"bad mode", func(c *Config) { c.SwitchMode = "test" }, false},
		{"keep zero", func(c *Config) { c.KeepGenerations = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.modify(&c)
			if err := c.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestRun checks on start, when poked, and again soon after a failure
// that may pass; a woken poke suspends the host again after its check.
func TestRun(t *testing.T) {
	var mu sync.Mutex
	gets := 0
	down := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		gets++
		if down {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return gets
	}
	key, _ := cache.GenerateKey("k-1")
	dir := t.TempDir()
	cfg := Config{Host: "h", BuilderURLs: []string{srv.URL}, DeployKeys: []cache.PublicKey{key.Public()}, CacheKey: key.Public().String(),
		KeepGenerations: 1, CurrentSystem: dir + "/current", Profile: dir + "/p/system", StateDir: dir + "/state"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := New(cfg, &nix.Client{}, nil, nil)
	pokes := make(chan Poke, 1)
	suspended := filepath.Join(dir, "suspended")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- a.Run(ctx, RunOptions{Interval: time.Hour, Pokes: pokes, RetryMin: 20 * time.Millisecond,
			SuspendAfterWake: []string{"/bin/sh", "-c", "echo zzz > " + suspended}})
	}()
	defer func() { cancel(); <-done }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		testenv.Eventually(t, 10*time.Second, cond, "%s", what)
	}
	waitFor("retries while the builder is down", func() bool { return count() >= 3 })
	mu.Lock()
	down = false
	mu.Unlock()
	waitFor("a check that succeeds", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return !down && gets >= 4
	})
	time.Sleep(100 * time.Millisecond)
	settled := count()
	time.Sleep(100 * time.Millisecond)
	if count() != settled {
		t.Fatalf("checks go on after success: %d then %d, want the hourly interval", settled, count())
	}
	if _, err := os.Stat(suspended); err == nil {
		t.Fatal("suspended without a woken poke")
	}
	pokes <- Poke{Woken: true}
	waitFor("the poked check", func() bool { return count() > settled })
	waitFor("suspend after the woken check", func() bool { _, err := os.Stat(suspended); return err == nil })
}

// TestRunAfterResume: a check follows a resume from sleep, and only that.
func TestRunAfterResume(t *testing.T) {
	var mu sync.Mutex
	gets := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			mu.Lock()
			gets++
			mu.Unlock()
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	count := func() int { mu.Lock(); defer mu.Unlock(); return gets }
	key, _ := cache.GenerateKey("k-1")
	dir := t.TempDir()
	cfg := Config{Host: "h", BuilderURLs: []string{srv.URL}, DeployKeys: []cache.PublicKey{key.Public()}, CacheKey: key.Public().String(),
		KeepGenerations: 1, CurrentSystem: dir + "/current", Profile: dir + "/p/system", StateDir: dir + "/state"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sleeps := make(chan time.Duration, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- New(cfg, &nix.Client{}, nil, nil).Run(ctx, RunOptions{Interval: time.Hour, ResumeTick: 10 * time.Millisecond,
			slept: func(time.Time, time.Time) time.Duration {
				select {
				case d := <-sleeps:
					return d
				default:
					return 0
				}
			}})
	}()
	defer func() { cancel(); <-done }()
	testenv.Eventually(t, 10*time.Second, func() bool { return count() >= 1 }, "the check at start")
	sleeps <- 5 * time.Millisecond // shorter than a tick: clock jitter, not sleep
	time.Sleep(100 * time.Millisecond)
	if got := count(); got != 1 {
		t.Fatalf("checks = %d after jitter, want 1 (the start)", got)
	}
	sleeps <- 8 * time.Hour
	testenv.Eventually(t, 10*time.Second, func() bool { return count() >= 2 }, "a check after the resume")
	if got := count(); got != 2 {
		t.Fatalf("checks = %d after a resume, want 2", got)
	}
}

// TestInterruptedUpdate: the agent (or the host) stopped in the middle of
// an activation. At the next start a closure that became the running
// system and is healthy stays; anything else goes back to exactly the
// previous closure.
func TestInterruptedUpdate(t *testing.T) {
	w := newWorld(t)
	p := w.paths
	tests := []struct {
		name    string
		target  string // the closure being activated
		running string // what current-system names after the crash
		want    Outcome
		acts    []string // activations after the restart
	}{
		{"activated and healthy", "v2", "v2", Outcome{Result: farmapi.ResultSwitched, Seq: 2}, nil},
		{"activated and unhealthy", "unhealthy", "unhealthy", Outcome{Result: farmapi.ResultRolledBack, Seq: 2}, []string{"activated v1 switch"}},
		{"stopped before the link changed", "v2", "v1", Outcome{Result: farmapi.ResultRolledBack, Seq: 2}, []string{"activated v1 switch"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := w.fixture(t)
			w.fb.serve(f.sign(t, w.deployKey, "stolas", p["v1"], 1))
			if out := check(t, f.agent()); out.Result != farmapi.ResultSwitched {
				t.Fatalf("install v1: %+v", out)
			}
			// The crash: the new closure realised and in the profile, the
			// pending record written, current-system as the case says.
			ctx := context.Background()
			if err := f.client.RealiseFrom(ctx, p[tt.target], nix.SubstituteOptions{From: f.cfg.CacheURL, TrustedKeys: []string{f.cfg.CacheKey}, Store: f.cfg.Store}); err != nil {
				t.Fatal(err)
			}
			if err := f.client.SetProfile(ctx, f.cfg.Store, f.profile, p[tt.target]); err != nil {
				t.Fatal(err)
			}
			st, _ := loadState(f.stateDir)
			st.Pending = &Pending{Seq: 2, StorePath: p[tt.target], Previous: p["v1"]}
			if err := saveState(f.stateDir, st); err != nil {
				t.Fatal(err)
			}
			if err := replaceSymlink(p[tt.running], f.current); err != nil {
				t.Fatal(err)
			}
			w.fb.serve(f.sign(t, w.deployKey, "stolas", p[tt.target], 2))
			actsBefore := len(f.activationLog(t))

			out := check(t, f.agent())
			want := tt.want
			want.Current = p["v1"]
			if tt.want.Result == farmapi.ResultSwitched {
				want.Current = p[tt.target]
			}
			got := out
			got.Reason = ""
			if got != want {
				t.Fatalf("outcome = %+v, want %+v", out, want)
			}
			if c, pp := f.currentPath(t), f.profilePath(t); c != want.Current || pp != want.Current {
				t.Errorf("current %s, profile %s, want both %s", c, pp, want.Current)
			}
			if got := f.activationLog(t)[actsBefore:]; strings.Join(got, "\n") != strings.Join(tt.acts, "\n") {
				t.Errorf("activations after the restart = %q, want %q", got, tt.acts)
			}
			// The next check: the manifest is spent, nothing moves.
			if again := check(t, f.agent()); again.Current != want.Current || again.Result == farmapi.ResultSwitched {
				t.Errorf("next check: %+v", again)
			}
		})
	}
}

// TestSystemdHealth: a unit that had failed before a switch does not undo
// it; a unit failing after it does.
func TestSystemdHealth(t *testing.T) {
	w := newWorld(t)
	f := w.fixture(t)
	p := w.paths
	dir := t.TempDir()
	systemctl := filepath.Join(dir, "systemctl")
	// A fake systemctl: old.service has failed all along; new.service fails
	// whenever v3 runs.
	script := fmt.Sprintf(`#!/bin/sh
echo "$*" >> %[1]s/calls
case "$1" in
is-system-running) echo degraded; exit 1 ;;
list-units)
	echo "old.service loaded failed failed An old failure"
	case "$(readlink %[2]s)" in *-v3) echo "new.service loaded failed failed Broken by v3" ;; esac ;;
esac
`, dir, f.current)
	if err := os.WriteFile(systemctl, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	f.cfg.SystemdHealth, f.cfg.Systemctl = true, systemctl

	w.fb.serve(f.sign(t, w.deployKey, "stolas", p["v1"], 1))
	if out := check(t, f.agent()); out.Result != farmapi.ResultSwitched || out.Current != p["v1"] {
		t.Fatalf("v1 with old.service failed all along: %+v, want switched", out)
	}
	w.fb.serve(f.sign(t, w.deployKey, "stolas", p["v3"], 2))
	out := check(t, f.agent())
	if out.Result != farmapi.ResultRolledBack || out.Current != p["v1"] || !strings.Contains(out.Reason, "new.service") || strings.Contains(out.Reason, "old.service") {
		t.Fatalf("v3 breaking new.service: %+v, want rolled back to v1 for new.service alone", out)
	}
	calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
	if !strings.Contains(string(calls), "is-system-running --wait") {
		t.Errorf("systemctl calls:\n%s\nwant a wait for the system to settle", calls)
	}
}

// TestBuilderFailover: with two builder URLs, the first of which fails
// (5xx, then gone altogether), the agent fetches its manifest and the seq
// and reports through the second, and stays with it.
func TestBuilderFailover(t *testing.T) {
	w := newWorld(t)
	f := w.fixture(t)
	var mu sync.Mutex
	asked := 0
	first := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked++
		mu.Unlock()
		http.Error(rw, "database unavailable", http.StatusServiceUnavailable)
	}))
	f.cfg.BuilderURLs = []string{first.URL, w.fb.srv.URL}
	w.fb.mu.Lock()
	w.fb.seq = 1
	w.fb.mu.Unlock()
	w.fb.serve(f.sign(t, w.deployKey, "stolas", w.paths["v1"], 1))

	out := check(t, f.agent())
	if out.Result != farmapi.ResultSwitched || out.Current != w.paths["v1"] {
		t.Fatalf("outcome = %+v, want switched to v1 through the second builder", out)
	}
	if rep := w.fb.lastReport(); rep != out.Report() {
		t.Errorf("second builder got report %+v, want %+v", rep, out.Report())
	}
	mu.Lock()
	if asked != 1 {
		t.Errorf("the failing builder was asked %d times, want once (then the agent stays with the one that answered)", asked)
	}
	mu.Unlock()

	// The first one gone altogether, a fresh agent (a restart) starts with
	// it again, and moves on.
	first.Close()
	w.fb.serve(f.sign(t, w.deployKey, "stolas", w.paths["v2"], 2))
	out = check(t, f.agent())
	if out.Result != farmapi.ResultSwitched || out.Current != w.paths["v2"] {
		t.Fatalf("outcome = %+v, want switched to v2 through the second builder", out)
	}
	if rep := w.fb.lastReport(); rep != out.Report() {
		t.Errorf("second builder got report %+v, want %+v", rep, out.Report())
	}
}
