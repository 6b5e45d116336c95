package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/queue"
	"github.com/homelab-farm/farm/internal/queue/sqlite"
)

// TestTriggerTakesOnlyFullCommitIDs: a manual evaluation is of a full
// commit id, or of a branch resolved to one first; anything symbolic is
// refused and enqueues nothing.
func TestTriggerTakesOnlyFullCommitIDs(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	gitOut(t, src, "init", "-q", "-b", "main")
	gitOut(t, src, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "one")
	c1 := gitOut(t, src, "rev-parse", "HEAD")
	gitOut(t, src, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "two")
	c2 := gitOut(t, src, "rev-parse", "HEAD")

	q, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "queue.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	cfg := &config.Config{Repositories: []config.Repository{{
		Name: "homelab", DeployBranch: "main",
		Remotes: []config.Remote{{Forge: forge.GitHub, URL: "https://github.com/alice/homelab", CloneURL: src}},
	}}}
	s := New(Deps{Config: cfg, Jobs: q, AdminToken: []byte("admin")})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)

	tests := []struct {
		body       string
		wantStatus int
		wantCommit string // in the answer, for 202
		wantMsg    string // in the answer, for 400
	}{
		{`{"repo":"homelab","commit":"HEAD~1"}`, http.StatusBadRequest, "", `commit \"HEAD~1\" is not a full commit id`},
		{`{"repo":"homelab","commit":"main"}`, http.StatusBadRequest, "", "not a full commit id"},
		{`{"repo":"homelab","commit":"` + c1[:12] + `"}`, http.StatusBadRequest, "", "not a full commit id"},
		{`{"repo":"homelab","branch":"x~1"}`, http.StatusBadRequest, "", "not a valid branch name"},
		{`{"repo":"homelab","branch":"*"}`, http.StatusBadRequest, "", "not a valid branch name"},
		{`{"repo":"homelab","commit":"` + strings.ToUpper(c1) + `"}`, http.StatusAccepted, c1, ""},
		{`{"repo":"homelab","branch":"main"}`, http.StatusAccepted, c2, ""},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/evaluations", strings.NewReader(tt.body))
		req.Header.Set("Authorization", "Bearer admin")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.wantStatus {
			t.Errorf("%s: %d %s, want %d", tt.body, resp.StatusCode, b, tt.wantStatus)
			continue
		}
		if tt.wantMsg != "" && !strings.Contains(string(b), tt.wantMsg) {
			t.Errorf("%s: answer %s, want it to say %q", tt.body, b, tt.wantMsg)
		}
		if tt.wantCommit != "" {
			var got struct{ Commit string }
			_ = json.Unmarshal(b, &got)
			if got.Commit != tt.wantCommit {
				t.Errorf("%s: commit %q, want %q", tt.body, got.Commit, tt.wantCommit)
			}
		}
	}
	// Exactly the two accepted evaluations are queued, both of full ids.
	var commits []string
	for {
		job, err := q.Claim(ctx, queue.ClaimRequest{Worker: "t", Kinds: []string{queue.KindEval}, Lease: time.Minute})
		if err != nil {
			break
		}
		commits = append(commits, job.Commit)
	}
	if len(commits) != 2 {
		t.Errorf("queued commits %q, want %s and %s", commits, c1, c2)
	}
}

func gitOut(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}
