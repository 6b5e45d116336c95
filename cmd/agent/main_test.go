package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/agent/window"
	"github.com/homelab-farm/farm/internal/cli"
	"github.com/homelab-farm/farm/internal/cli/clitest"

	"github.com/homelab-farm/farm/internal/cache"
)

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRunOnce wires the agent from environment variables alone and checks
// once against a builder that has no manifest for the host: it reports
// up-to-date with its token, and never prints the token. Given several
// builder URLs (flags, a comma list, or both), it reports through the one
// that answers.
func TestRunOnce(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close() // a builder instance that is down
	tests := []struct {
		name string
		env  func(live string) map[string]string
		args func(live string) []string
	}{
		{"one URL in the older variable", func(live string) map[string]string { return map[string]string{"AGENT_BUILDER_URL": live} }, nil},
		{"a comma list, the first down", func(live string) map[string]string {
			return map[string]string{"AGENT_BUILDER_URLS": dead.URL + ", " + live}
		}, nil},
		{"repeated flags, the first down", nil, func(live string) []string { return []string{"--builder-url", dead.URL, "--builder-url", live} }},
		{"a flag with a comma list", nil, func(live string) []string { return []string{"--builder-url", dead.URL + "," + live} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			deployKey, _ := cache.GenerateKey("farm-deploy-1")
			cacheKey, _ := cache.GenerateKey("farm-cache-1")
			const token = "s3cret-host-token"
			var mu sync.Mutex
			var reports []map[string]any
			var auth []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.Method == http.MethodGet && r.URL.Path == "/api/hosts/andras/manifest":
					http.NotFound(w, r)
				case r.Method == http.MethodPost && r.URL.Path == "/api/hosts/andras/report":
					var rep map[string]any
					_ = json.NewDecoder(r.Body).Decode(&rep)
					mu.Lock()
					reports = append(reports, rep)
					auth = append(auth, r.Header.Get("Authorization"))
					mu.Unlock()
					w.WriteHeader(http.StatusNoContent)
				default:
					http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusTeapot)
				}
			}))
			defer srv.Close()
			env := map[string]string{
				"AGENT_HOST":                   "andras",
				"AGENT_TOKEN_FILE":             writeFile(t, dir, "token", token+"\n"),
				"AGENT_DEPLOY_PUBLIC_KEY_FILE": writeFile(t, dir, "deploy.pub", deployKey.Public().String()+"\n"),
				"AGENT_CACHE_PUBLIC_KEY":       cacheKey.Public().String(),
				"AGENT_CACHE_URL":              srv.URL + "/nix-cache",
				"AGENT_CURRENT_SYSTEM":         filepath.Join(dir, "current-system"),
				"AGENT_PROFILE":                filepath.Join(dir, "profiles", "system"),
				"AGENT_STATE_DIR":              filepath.Join(dir, "state"),
				"AGENT_LOG_LEVEL":              "debug",
			}
			if tt.env != nil {
				for k, v := range tt.env(srv.URL) {
					env[k] = v
				}
			}
			args := []string{"--once"}
			if tt.args != nil {
				args = append(args, tt.args(srv.URL)...)
			}
			var stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := run(ctx, args, func(k string) string { return env[k] }, io.Discard, &stderr); err != nil {
				t.Fatalf("run: %v\n%s", err, stderr.String())
			}
			mu.Lock()
			defer mu.Unlock()
			if len(reports) != 1 || reports[0]["result"] != "up-to-date" {
				t.Fatalf("reports = %v, want one up-to-date", reports)
			}
			if auth[0] != "Bearer "+token {
				t.Errorf("report authorization = %q, want the token from the file", auth[0])
			}
			if strings.Contains(stderr.String(), token) {
				t.Errorf("the log shows the token:\n%s", stderr.String())
			}
		})
	}
}

func TestFlagErrors(t *testing.T) {
	dir := t.TempDir()
	key, _ := cache.GenerateKey("farm-deploy-1")
	pub := writeFile(t, dir, "deploy.pub", key.Public().String())
	bad := writeFile(t, dir, "bad.pub", "not a key")
	base := []string{"--builder-url", "http://127.0.0.1:1", "--host", "h", "--cache-public-key", key.Public().String(),
		"--state-dir", dir, "--current-system", dir + "/cur", "--profile", dir + "/p/system", "--once"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no deploy key", nil, "--deploy-public-key-file is required"},
		{"bad deploy key", []string{"--deploy-public-key-file", bad}, "deploy public key file"},
		{"missing token file", []string{"--deploy-public-key-file", pub, "--token-file", dir + "/nope"}, "read token"},
		{"bad switch mode", []string{"--deploy-public-key-file", pub, "--switch-mode", "test"}, "switch mode"},
		{"zero interval", []string{"--deploy-public-key-file", pub, "--interval", "0s"}, "--interval"},
		{"stray argument", []string{"--deploy-public-key-file", pub, "extra"}, "unexpected arguments"},
		{"empty token file", []string{"--deploy-public-key-file", pub, "--token-file", writeFile(t, dir, "empty", " \n")}, "is empty"},
		{"deploy key file without a key", []string{"--deploy-public-key-file", writeFile(t, dir, "none.pub", "# none\n")}, "holds no key"},
		{"bad log level", []string{"--deploy-public-key-file", pub, "--log-level", "loud"}, "usage error"},
		{"bad window", []string{"--deploy-public-key-file", pub, "--window", "nightly"}, "--window"},
		{"unknown time zone", []string{"--deploy-public-key-file", pub, "--window", "03:00-05:00", "--time-zone", "Mars/Olympus"}, "--time-zone"},
		{"a relative second builder URL", []string{"--deploy-public-key-file", pub, "--builder-url", "builder2"}, "builder URLs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), append(append([]string(nil), base...), tt.args...), func(string) string { return "" }, io.Discard, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// The schema the NixOS module is generated from is the one the program has.
func TestFlagsJSON(t *testing.T) {
	clitest.CheckFlagsJSON(t, run, nil, "../../nix/services/flags/agent.json")
}

// A malformed environment value is an error, as the same flag would be.
func TestEnvErrors(t *testing.T) {
	for _, env := range []map[string]string{
		{"AGENT_KEEP_GENERATIONS": "two"},
		{"AGENT_INTERVAL": "daily"},
		{"AGENT_SYSTEMD_HEALTH": "maybe"},
		{"AGENT_LOG_LEVEL": "loud"},
		{"AGENT_IDLE_MINUTES": "soon"},
	} {
		var stderr bytes.Buffer
		err := run(context.Background(), []string{"--once"}, func(k string) string { return env[k] }, io.Discard, &stderr)
		if !errors.Is(err, cli.ErrUsage) {
			t.Errorf("run with %v = %v, want a usage error", env, err)
			continue
		}
		for k := range env {
			if !strings.Contains(err.Error(), k) {
				t.Errorf("error %q does not name %s", err, k)
			}
		}
	}
}

// TestWindowFlags: the window flags (internal/agent/window) reach the
// agent's configuration, from flags and from the environment.
func TestWindowFlags(t *testing.T) {
	dir := t.TempDir()
	key, _ := cache.GenerateKey("farm-deploy-1")
	pub := writeFile(t, dir, "deploy.pub", key.Public().String())
	env := map[string]string{"AGENT_WINDOW": "when-idle", "AGENT_IDLE_MINUTES": "30", "AGENT_OUTSIDE_WINDOW": "wait"}
	o, err := parseFlags([]string{"--builder-url", "http://127.0.0.1:1", "--deploy-public-key-file", pub, "--idle-minutes", "20"},
		func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := o.config()
	if err != nil {
		t.Fatal(err)
	}
	if w := cfg.Window; w.Window.Kind != window.WhenIdle || w.Outside != window.OutsideWait || w.IdleFor != 20*time.Minute {
		t.Errorf("window policy = %+v, want when-idle, wait, 20 minutes (the flag over the environment)", w)
	}
}
