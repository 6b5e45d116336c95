package config_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/config"
	"github.com/homelab-farm/farm/internal/forge"
)

func TestExample(t *testing.T) {
	t.Parallel()
	c, err := config.LoadFile("../../examples/builder.toml")
	if err != nil {
		t.Fatalf("Load(example) = %v", err)
	}
	if got, want := len(c.Repositories), 1; got != want {
		t.Fatalf("repositories = %d, want %d", got, want)
	}
	r := c.Repositories[0]
	if r.Name != "homelab" || r.DeployBranch != "main" || len(r.Remotes) != 3 {
		t.Fatalf("repository = %+v", r)
	}
	if r.Remotes[1].Forge != forge.Forgejo {
		t.Errorf("codeberg remote forge = %q, want forgejo", r.Remotes[1].Forge)
	}
	if got := string(r.Remotes[2].Secrets[1]); got != "demo-previous-secret" {
		t.Errorf("second secret = %q (trailing newline must be trimmed)", got)
	}
	if c.Queue.Lease.Duration != 5*time.Minute || c.Queue.MaxAttempts != 5 || c.MaxBodyBytes != 25<<20 {
		t.Errorf("queue = %+v, max body = %d", c.Queue, c.MaxBodyBytes)
	}
	if !filepath.IsAbs(c.StateDir) {
		t.Errorf("state_dir %q not resolved against the file's directory", c.StateDir)
	}
}

func TestBranch(t *testing.T) {
	t.Parallel()
	r := config.Repository{DeployBranch: "main", Branches: []string{"staging", "renovate/*"}}
	tests := []struct {
		branch           string
		evaluate, deploy bool
	}{
		{"main", true, true},
		{"staging", true, false},
		{"renovate/nixpkgs", true, false},
		{"feature", false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		if e, d := r.Branch(tt.branch); e != tt.evaluate || d != tt.deploy {
			t.Errorf("Branch(%q) = %v, %v; want %v, %v", tt.branch, e, d, tt.evaluate, tt.deploy)
		}
	}
	all := config.Repository{DeployBranch: "prod"}
	if e, d := all.Branch("anything"); !e || d {
		t.Errorf("no patterns: Branch(anything) = %v, %v; want true, false", e, d)
	}
}

func TestErrorsHaveLines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	remote := func(forge, url string) string {
		return "  [[repository.remote]]\n  forge = \"" + forge + "\"\n  url = \"" + url + "\"\n  secret_files = [\"secret\"]\n"
	}
	tests := []struct {
		name     string
		src      string
		wantLine int
		wantMsg  string
	}{
		{name: "syntax", src: "listen = \"x\"\nstate_dir = \n", wantLine: 2, wantMsg: "expected value"},
		{name: "type", src: "listen = \"x\"\nmax_body_bytes = \"big\"\n", wantLine: 2, wantMsg: "max_body_bytes"},
		{name: "unknown key", src: "listen = \"x\"\n\n[queue]\nurl = \"\"\nleese = \"5m\"\n", wantLine: 5, wantMsg: `unknown key "queue.leese"`},
		{name: "bad duration", src: "[queue]\nlease = \"soon\"\n", wantLine: 2, wantMsg: "soon"},
		{name: "bad forge", src: "[[repository]]\nname = \"a\"\n" + remote("github", "https://github.com/a/b") + remote("gitlab", "https://gitlab.com/a/b"),
			wantLine: 8, wantMsg: `forge "gitlab"`},
		{name: "bad url", src: "[[repository]]\nname = \"a\"\n" + remote("github", "github.com/a/b"), wantLine: 5, wantMsg: "want https://host/owner/name"},
		{name: "duplicate remote across repositories", src: "[[repository]]\nname = \"a\"\n" + remote("github", "https://github.com/a/b") +
			"[[repository]]\nname = \"b\"\n" + remote("github", "https://github.com/a/b.git"), wantLine: 11, wantMsg: `already a remote of "a"`},
		{name: "missing secret file", src: "[[repository]]\nname = \"a\"\n  [[repository.remote]]\n  forge = \"github\"\n  url = \"https://github.com/a/b\"\n  secret_files = [\"nope\"]\n",
			wantLine: 6, wantMsg: "no such file"},
		{name: "no remotes", src: "[[repository]]\nname = \"a\"\n", wantLine: 1, wantMsg: "no [[repository.remote]]"},
		{name: "bad name", src: "[[repository]]\nname = \"a b\"\n" + remote("github", "https://github.com/a/b"), wantLine: 2, wantMsg: `name "a b"`},
		{name: "bad queue url", src: "[queue]\nurl = \"mysql://u:pw@h/db\"\n", wantLine: 2, wantMsg: "mysql://…@h/db"},
		{name: "bad database url", src: "listen = \"x\"\ndatabase = \"mysql://u:pw@h/db\"\n", wantLine: 2, wantMsg: "mysql://…@h/db"},
		{name: "database and another queue", src: "database = \"postgres://u:pw@h/farm\"\n[queue]\nurl = \"sqlite:/q.db\"\n", wantLine: 3,
			wantMsg: "the database holds the queue too"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".toml")
			if err := os.WriteFile(file, []byte(tt.src), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := config.LoadFile(file)
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("Load = %v, want *config.Error", err)
			}
			if ce.File != file || ce.Line != tt.wantLine || !strings.Contains(ce.Msg, tt.wantMsg) {
				t.Errorf("Load = %q (line %d), want line %d containing %q", err, ce.Line, tt.wantLine, tt.wantMsg)
			}
			if strings.Contains(err.Error(), "pw") {
				t.Errorf("error %q leaks a password", err)
			}
		})
	}
}

// TestDatabase: one PostgreSQL URL holds the queue too; SQLite keeps the
// queue where queue.url says.
func TestDatabase(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src, wantQueue, wantDatabase string
	}{
		{"default", "listen = \"x\"\nstate_dir = \"s\"\n", "", ""},
		{"embedded", "listen = \"x\"\nstate_dir = \"s\"\ndatabase = \"sqlite:\"\n[queue]\nurl = \"postgres://h/q\"\n", "postgres://h/q", "sqlite:"},
		{"postgres", "listen = \"x\"\nstate_dir = \"s\"\ndatabase = \"postgres://h/farm\"\n", "postgres://h/farm", "postgres://h/farm"},
		{"postgres named twice", "listen = \"x\"\nstate_dir = \"s\"\ndatabase = \"postgresql://h/farm\"\n[queue]\nurl = \"postgresql://h/farm\"\n", "postgresql://h/farm", "postgresql://h/farm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "builder.toml")
			if err := os.WriteFile(file, []byte(tt.src), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := config.LoadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if c.Queue.URL != tt.wantQueue || c.Database != tt.wantDatabase {
				t.Errorf("queue %q, database %q; want %q, %q", c.Queue.URL, c.Database, tt.wantQueue, tt.wantDatabase)
			}
		})
	}
}

// TestDatabaseAfterFlags: Validate judges database and queue.url as flags
// left them.
func TestDatabaseAfterFlags(t *testing.T) {
	t.Parallel()
	c := config.Default()
	c.Listen, c.StateDir = "127.0.0.1:0", t.TempDir()
	c.Database, c.Queue.URL = "postgres://u:pw@h/farm", "sqlite:"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "holds the queue too") || strings.Contains(err.Error(), "pw") {
		t.Fatalf("Validate = %v; want the conflict, without the password", err)
	}
	c.Database = "mysql://h/db"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "want sqlite: or postgres://") {
		t.Fatalf("Validate = %v; want a bad database URL", err)
	}
}

// An empty or white-space-only secret or token file is an error, never an
// empty secret.
func TestEmptySecretFiles(t *testing.T) {
	dir := t.TempDir()
	blank := filepath.Join(dir, "blank")
	if err := os.WriteFile(blank, []byte(" \n\t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &config.Remote{TokenFile: blank}
	if tok, err := m.ReadToken(); err == nil {
		t.Errorf("ReadToken of a blank file = %q, want an error", tok)
	}
	src := "[[repository]]\nname = \"a\"\n  [[repository.remote]]\n  forge = \"github\"\n  url = \"https://github.com/a/b\"\n  secret_files = [\"" + blank + "\"]\n"
	if _, err := config.Parse(filepath.Join(dir, "builder.toml"), []byte(src)); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("Parse with a blank webhook secret = %v, want an error saying it is empty", err)
	}
}

// TestValidateLimits: the serve limits are positive, and the webhook body
// budget holds the largest body (default: 32 MiB or max_body_bytes).
func TestValidateLimits(t *testing.T) {
	limits := func(budget int64, streams int, stall time.Duration) config.Serve {
		s := config.DefaultServe()
		s.WebhookBudget, s.MaxStreams, s.StallTimeout = budget, streams, stall
		return s
	}
	for _, tc := range []struct {
		name       string
		l          config.Serve
		maxBody    int64
		wantBudget int64
		ok         bool
	}{
		{"defaults", limits(0, 64, time.Minute), 25 << 20, 32 << 20, true},
		{"default budget holds a larger max body", limits(0, 64, time.Minute), 50 << 20, 50 << 20, true},
		{"budget below max body", limits(1<<20, 64, time.Minute), 25 << 20, 0, false},
		{"no streams", limits(0, 0, time.Minute), 25 << 20, 0, false},
		{"no stall timeout", limits(0, 1, 0), 25 << 20, 0, false},
	} {
		c := config.Default()
		c.Listen, c.StateDir, c.MaxBodyBytes, c.Serve = "127.0.0.1:0", t.TempDir(), tc.maxBody, tc.l
		err := c.Validate()
		if (err == nil) != tc.ok || (tc.ok && c.Serve.WebhookBudget != tc.wantBudget) {
			t.Errorf("%s: Validate = %v, budget %d; want ok=%v, budget %d", tc.name, err, c.Serve.WebhookBudget, tc.ok, tc.wantBudget)
		}
	}
}

// The old BUILDER_EVAL_MEMORY_MB (MiB) still works, and means what
// --eval-memory (bytes or a size) means.
func TestEvalMemoryUnits(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want int64
	}{
		{nil, nil, 0},
		{nil, map[string]string{"BUILDER_EVAL_MEMORY_MB": "3072"}, 3 << 30},
		{nil, map[string]string{"BUILDER_EVAL_MEMORY": "3GiB"}, 3 << 30},
		{[]string{"--eval-memory", "3221225472"}, nil, 3 << 30},
		{[]string{"--eval-memory", "2GiB"}, map[string]string{"BUILDER_EVAL_MEMORY_MB": "3072"}, 2 << 30},
	}
	for _, tt := range tests {
		args := append([]string{"--state-dir", t.TempDir()}, tt.args...)
		cfg, _, err := config.Load(args, func(k string) string { return tt.env[k] }, io.Discard, io.Discard)
		if err != nil {
			t.Fatalf("%v %v: %v", tt.args, tt.env, err)
		}
		if cfg.Serve.EvalMemory != tt.want {
			t.Errorf("%v %v: eval memory %d, want %d", tt.args, tt.env, cfg.Serve.EvalMemory, tt.want)
		}
	}
}
