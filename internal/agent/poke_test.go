package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv"
)

// pokeWorld is a running agent whose checks a fake builder counts (and can
// hold), with its poke endpoint served over HTTP.
type pokeWorld struct {
	mu      sync.Mutex
	checks  int
	hold    chan struct{} // non-nil: a check's manifest request waits for it
	started chan struct{} // a check began
	pokeURL string
	gaps    chan time.Time // fires the poke gap
	waits   []time.Duration
	dir     string
}

func newPokeWorld(t *testing.T, hold bool) *pokeWorld {
	t.Helper()
	w := &pokeWorld{started: make(chan struct{}, 1000), gaps: make(chan time.Time), dir: t.TempDir()}
	if hold {
		w.hold = make(chan struct{})
	}
	builder := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			rw.WriteHeader(http.StatusNoContent)
			return
		}
		w.mu.Lock()
		w.checks++
		hold := w.hold
		w.mu.Unlock()
		w.started <- struct{}{}
		if hold != nil {
			<-hold
		}
		http.NotFound(rw, r)
	}))
	t.Cleanup(builder.Close)
	key, _ := cache.GenerateKey("k-1")
	cfg := Config{Host: "h", BuilderURLs: []string{builder.URL}, DeployKeys: []cache.PublicKey{key.Public()}, CacheKey: key.Public().String(),
		KeepGenerations: 1, CurrentSystem: w.dir + "/current", Profile: w.dir + "/p/system", StateDir: w.dir + "/state"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	pokes := make(chan Poke, 1) // as cmd/agent makes it
	ps := httptest.NewServer(PokeHandler([]byte("poke-secret"), pokes))
	t.Cleanup(ps.Close)
	w.pokeURL = ps.URL + "/poke"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- New(cfg, &nix.Client{}, nil, nil).Run(ctx, RunOptions{Interval: time.Hour, Pokes: pokes,
			SuspendAfterWake: []string{"/bin/sh", "-c", "echo zzz >> " + filepath.Join(w.dir, "suspended")},
			after: func(d time.Duration) <-chan time.Time {
				w.mu.Lock()
				defer w.mu.Unlock()
				w.waits = append(w.waits, d)
				return w.gaps
			}})
	}()
	t.Cleanup(func() {
		w.release()
		cancel()
		<-done
	})
	return w
}

func (w *pokeWorld) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.checks
}

// release lets held checks go on, and the ones after them.
func (w *pokeWorld) release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.hold != nil {
		close(w.hold)
		w.hold = nil
	}
}

func (w *pokeWorld) poke(t *testing.T, woken bool) {
	t.Helper()
	body := ""
	if woken {
		body = `{"woken":true}`
	}
	req, _ := http.NewRequest(http.MethodPost, w.pokeURL, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer poke-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("poke answered %s", resp.Status)
	}
}

func (w *pokeWorld) suspends() int {
	b, _ := os.ReadFile(filepath.Join(w.dir, "suspended"))
	return strings.Count(string(b), "zzz")
}

// TestPokeFlood: 300 pokes, one after another, right after a check: they
// start no check of their own; once the poke gap has passed they make
// exactly one more, woken because one of them was.
func TestPokeFlood(t *testing.T) {
	w := newPokeWorld(t, false)
	testenv.Eventually(t, 10*time.Second, func() bool { return w.count() == 1 }, "the first check")
	time.Sleep(20 * time.Millisecond) // the check's report
	for i := range 300 {
		w.poke(t, i == 150)
	}
	time.Sleep(100 * time.Millisecond)
	if got := w.count(); got != 1 {
		t.Fatalf("300 pokes right after a check ran %d checks, want none before the gap", got-1)
	}
	w.mu.Lock()
	if len(w.waits) != 1 || w.waits[0] <= 0 || w.waits[0] > DefaultPokeGap {
		t.Errorf("gap waits %v, want one of at most %v", w.waits, DefaultPokeGap)
	}
	w.mu.Unlock()
	w.gaps <- time.Now()
	testenv.Eventually(t, 10*time.Second, func() bool { return w.count() == 2 }, "the check after the gap")
	testenv.Eventually(t, 10*time.Second, func() bool { return w.suspends() == 1 }, "suspend after the woken check")
	time.Sleep(100 * time.Millisecond)
	if got := w.count(); got != 2 {
		t.Errorf("checks = %d, want exactly 2", got)
	}
}

// TestPokeBurstDuringCheck: 300 pokes at once while a (held) check runs
// collapse into exactly one more check; a woken poke among plain ones is
// not lost.
func TestPokeBurstDuringCheck(t *testing.T) {
	w := newPokeWorld(t, true)
	<-w.started
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.poke(t, i == 7)
		}()
	}
	wg.Wait()
	w.release()
	// The first check ended just now: the queued one waits for the gap.
	testenv.Eventually(t, 10*time.Second, func() bool { w.mu.Lock(); defer w.mu.Unlock(); return len(w.waits) == 1 }, "the gap to be asked for")
	w.gaps <- time.Now()
	testenv.Eventually(t, 10*time.Second, func() bool { return w.count() == 2 }, "the queued check")
	testenv.Eventually(t, 10*time.Second, func() bool { return w.suspends() == 1 }, "suspend after the woken check")
	time.Sleep(100 * time.Millisecond)
	if got := w.count(); got != 2 {
		t.Errorf("checks = %d, want exactly 2", got)
	}
}
