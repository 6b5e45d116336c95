package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cli"
	"github.com/homelab-farm/farm/internal/farmapi"
)

// fakeRolloutAPI is the builder's POST /api/rollouts as documented in
// farmapi.RollbackRequest: admin token, 201 with the rollout, or an error
// status with {"error": ...}.
type fakeRolloutAPI struct {
	token string
	mu    sync.Mutex
	got   []farmapi.RollbackRequest
}

func (f *fakeRolloutAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
	}
	if r.Method != http.MethodPost || r.URL.Path != "/api/rollouts" {
		fail(http.StatusNotFound, "not found")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		fail(http.StatusUnauthorized, "bad or missing admin token")
		return
	}
	var req farmapi.RollbackRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fail(http.StatusBadRequest, "malformed request")
		return
	}
	f.mu.Lock()
	f.got = append(f.got, req)
	f.mu.Unlock()
	switch {
	case strings.HasPrefix("0123456789abcdef0123456789abcdef01234567", req.To):
		hosts := []farmapi.RolloutHost{
			{Host: "stolas", Wave: 0, Offered: true}, {Host: "andras", Wave: 1}, {Host: "bael", Wave: 1},
		}
		if len(req.Hosts) > 0 {
			hosts = slices.DeleteFunc(hosts, func(h farmapi.RolloutHost) bool { return !slices.Contains(req.Hosts, h.Host) })
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(farmapi.Rollout{ID: 7, Repo: "homelab", Commit: "0123456789abcdef0123456789abcdef01234567",
			Kind: "rollback", Status: "progressing", Started: time.Now(), Hosts: hosts})
	case req.To == "deadbeef00":
		fail(http.StatusConflict, "closure no longer in the binary cache: cannot roll back to deadbeef00…: andras /nix/store/x\x1b[31m")
	default:
		fail(http.StatusNotFound, "rollback refused: no deploy of a commit "+req.To+" has finished")
	}
}

func TestRollbackCommand(t *testing.T) {
	api := &fakeRolloutAPI{token: "s3cret-admin"}
	srv := httptest.NewServer(api)
	defer srv.Close()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte("s3cret-admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongFile := filepath.Join(dir, "wrong-token")
	if err := os.WriteFile(wrongFile, []byte("guess"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantReq  *farmapi.RollbackRequest
		wantOut  string
		wantErr  error
		errSays  string
		noAnswer bool // the builder is never asked
	}{
		{
			name:    "every host",
			args:    []string{"--builder", srv.URL, "--admin-token-file", tokenFile, "--to", "0123456789AB"},
			wantReq: &farmapi.RollbackRequest{To: "0123456789ab"},
			wantOut: "rollout 7: rolling back homelab to 0123456789abcdef0123456789abcdef01234567 (progressing)\n  wave 0: stolas (offered)\n  wave 1: andras bael\n",
		},
		{
			name:    "listed hosts, builder and token from the environment",
			args:    []string{"--to", "0123456", "--host", "bael", "--host", "stolas", "--repo", "homelab"},
			env:     map[string]string{"BUILDER_ROLLBACK_BUILDER": srv.URL + "/", "BUILDER_ROLLBACK_ADMIN_TOKEN_FILE": tokenFile},
			wantReq: &farmapi.RollbackRequest{To: "0123456", Hosts: []string{"bael", "stolas"}, Repo: "homelab"},
			wantOut: "rollout 7: rolling back homelab to 0123456789abcdef0123456789abcdef01234567 (progressing)\n  wave 0: stolas (offered)\n  wave 1: bael\n",
		},
		{
			name:    "a closure gone from the cache: the builder's reason, without terminal escapes",
			args:    []string{"--builder", srv.URL, "--admin-token-file", tokenFile, "--to", "deadbeef00"},
			wantReq: &farmapi.RollbackRequest{To: "deadbeef00"},
			wantErr: errRefused, errSays: "(HTTP 409): closure no longer in the binary cache: cannot roll back to deadbeef00…: andras /nix/store/x [31m",
		},
		{
			name:    "a commit never deployed",
			args:    []string{"--builder", srv.URL, "--admin-token-file", tokenFile, "--to", "fffffff"},
			wantReq: &farmapi.RollbackRequest{To: "fffffff"},
			wantErr: errRefused, errSays: "(HTTP 404): rollback refused: no deploy of a commit fffffff has finished",
		},
		{
			name:    "a wrong admin token",
			args:    []string{"--builder", srv.URL, "--admin-token-file", wrongFile, "--to", "0123456"},
			wantErr: errRefused, errSays: "(HTTP 401): bad or missing admin token",
		},
		{name: "no commit", args: []string{"--builder", srv.URL, "--admin-token-file", tokenFile}, wantErr: cli.ErrUsage, errSays: "--to COMMIT is required", noAnswer: true},
		{name: "not a commit id", args: []string{"--builder", srv.URL, "--admin-token-file", tokenFile, "--to", "HEAD~1"}, wantErr: cli.ErrUsage, errSays: `--to "HEAD~1" is not a commit id`, noAnswer: true},
		{name: "too short", args: []string{"--builder", srv.URL, "--admin-token-file", tokenFile, "--to", "abc"}, wantErr: cli.ErrUsage, errSays: "is not a commit id", noAnswer: true},
		{name: "a bad host name", args: []string{"--builder", srv.URL, "--admin-token-file", tokenFile, "--to", "0123456", "--host", "../etc"}, wantErr: cli.ErrUsage, errSays: `--host "../etc"`, noAnswer: true},
		{name: "not an http URL", args: []string{"--builder", "file:///tmp/x", "--admin-token-file", tokenFile, "--to", "0123456"}, wantErr: cli.ErrUsage, errSays: "want an http(s) URL", noAnswer: true},
		{name: "no token file", args: []string{"--builder", srv.URL, "--to", "0123456"}, errSays: "no admin token file given", noAnswer: true},
		{name: "stray arguments", args: []string{"--builder", srv.URL, "--admin-token-file", tokenFile, "--to", "0123456", "bael"}, wantErr: cli.ErrUsage, noAnswer: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api.mu.Lock()
			before := len(api.got)
			api.mu.Unlock()
			var stdout, stderr bytes.Buffer
			getenv := func(k string) string { return tt.env[k] }
			err := run(context.Background(), append([]string{"rollback"}, tt.args...), getenv, &stdout, &stderr)
			switch {
			case tt.wantErr == nil && tt.errSays == "" && err != nil:
				t.Fatalf("rollback: %v", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("rollback = %v, want an error wrapping %v", err, tt.wantErr)
			case tt.errSays != "" && (err == nil || !strings.Contains(err.Error(), tt.errSays)):
				t.Fatalf("rollback = %v, want an error saying %q", err, tt.errSays)
			}
			if got := stdout.String(); got != tt.wantOut {
				t.Errorf("output\n%s\nwant\n%s", got, tt.wantOut)
			}
			if strings.Contains(stdout.String()+stderr.String(), "s3cret-admin") || (err != nil && strings.Contains(err.Error(), "s3cret-admin")) {
				t.Errorf("the admin token was printed")
			}
			api.mu.Lock()
			got := api.got[before:]
			api.mu.Unlock()
			if tt.noAnswer && len(got) != 0 {
				t.Errorf("the builder was asked %+v; want a refusal before any request", got)
			}
			if tt.wantReq != nil {
				if len(got) != 1 || got[0].To != tt.wantReq.To || got[0].Repo != tt.wantReq.Repo || !slices.Equal(got[0].Hosts, tt.wantReq.Hosts) {
					t.Errorf("the builder got %+v, want %+v", got, *tt.wantReq)
				}
			}
		})
	}
}
