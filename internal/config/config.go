// Package config is the builder's settings: Load merges the TOML file
// (examples/builder.toml is the commented reference), the environment and
// the flags of `builder serve` and checks them all with one Validate.
// Every mistake in the file is reported with the file, the line and the
// reason, before anything starts.
package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/homelab-farm/farm/internal/forge"
	"github.com/homelab-farm/farm/internal/secretfile"
)

// DefaultMaxBodyBytes is the largest webhook body accepted (25 MiB, GitHub's own cap).
const DefaultMaxBodyBytes = 25 << 20

// Config is the whole file.
type Config struct {
	Listen         string `toml:"listen"`
	StateDir       string `toml:"state_dir"`
	Cache          string `toml:"cache"`
	SigningKeyFile string `toml:"signing_key_file"`
	DeployKeyFile  string `toml:"deploy_key_file"`
	// PublicURL is where people reach the builder; statuses link to it.
	PublicURL    string       `toml:"public_url"`
	MaxBodyBytes int64        `toml:"max_body_bytes"`
	Queue        Queue        `toml:"queue"`
	Statuses     Statuses     `toml:"statuses"`
	Repositories []Repository `toml:"repository"`
	// Database is "" or "sqlite:" for the embedded SQLite files in the
	// state directory (state.db; the queue as Queue.URL says), or a
	// postgres:// URL holding the queue and the state together, shared by
	// every builder instance on it. Validate copies a PostgreSQL URL into
	// Queue.URL (which must then be empty or the same).
	Database string `toml:"database"`
	// Serve holds the settings only flags and the environment set.
	Serve Serve `toml:"-"`

	file string
}

// Serve are the settings of `builder serve` that only flags and the
// environment set (Load registers them with DefaultServe's values as
// defaults); Validate checks them with the rest.
type Serve struct {
	Workers        int    // evaluation workers
	AdminTokenFile string // POST /api/evaluations token; "": triggers refused
	AgentTokensDir string // one file per host with its agent's token
	FlakeDir       string // the fleet flake inside the repository
	Builders       string // Nix remote builders; "": Nix's own setting
	MaxSilent      time.Duration
	BuildTimeout   time.Duration
	EvalMemory     int64  // bytes for one host's evaluation; 0: from free memory
	CachePublicURL string // substituter hosts realise from; "": <public_url>/nix-cache
	ManifestTTL    time.Duration
	DeploySigner   string // "unix:PATH": sign through `builder signer`
	// Bounds on what unauthenticated clients can make the builder hold
	// (see internal/server.Limits); WebhookBudget 0 takes the default.
	WebhookBudget int64
	MaxStreams    int
	StallTimeout  time.Duration
}

// DefaultServe are the defaults of the serve flags.
func DefaultServe() Serve {
	return Serve{
		Workers: 1, FlakeDir: "nix", MaxSilent: 30 * time.Minute, BuildTimeout: 4 * time.Hour,
		ManifestTTL: 72 * time.Hour, MaxStreams: DefaultMaxStreams, StallTimeout: DefaultStallTimeout,
	}
}

// Queue configures the durable queue.
type Queue struct {
	// URL is "" or "sqlite:" for the embedded SQLite file in the state
	// directory, "sqlite:/path/queue.db" for another file, or a
	// postgres:// URL for a shared PostgreSQL queue.
	URL         string   `toml:"url"`
	MaxAttempts int      `toml:"max_attempts"`
	Lease       Duration `toml:"lease"`
}

// Statuses configures commit statuses.
type Statuses struct {
	// PerHostLimit caps per-host statuses per evaluation: beyond it, only
	// failed hosts get one (up to the limit). Default 20.
	PerHostLimit int `toml:"per_host_limit"`
	// Context prefixes every status context: "farm" gives "farm/eval" and
	// "farm/host/<name>".
	Context string `toml:"context"`
}

// Repository is one flake repository, reachable from one or more remotes.
type Repository struct {
	Name string `toml:"name"`
	// DeployBranch is the branch whose commits are deployed (default "main").
	DeployBranch string `toml:"deploy_branch"`
	// Branches are the glob patterns (path.Match) of branches to evaluate;
	// empty means every branch. The deploy branch is always evaluated.
	Branches []string `toml:"branches"`
	// SyncRemotes keeps the remotes in step: once a commit of the deploy
	// branch is evaluated, the deploy branch is fast-forwarded to it on
	// every other remote (with clone_url credentials; never forced).
	SyncRemotes bool     `toml:"sync_remotes"`
	Remotes     []Remote `toml:"remote"`
}

// Remote is one forge repository that mirrors a Repository.
type Remote struct {
	Forge forge.Kind `toml:"forge"`
	// URL is the repository's web URL, e.g. https://codeberg.org/alice/homelab.
	URL string `toml:"url"`
	// CloneURL is where the builder fetches commits from; default URL. It
	// may be any URL git fetches (ssh://, a local path for a mirror).
	CloneURL string `toml:"clone_url"`
	// APIURL is the forge's API base. Defaults: https://api.github.com/ for
	// GitHub, <scheme>://<host>/api/v1/ for Forgejo.
	APIURL string `toml:"api_url"`
	// SecretFiles hold the webhook secrets; several allow rotation.
	SecretFiles []string `toml:"secret_files"`
	// TokenFile holds the API token used for commit statuses; "" means no statuses.
	TokenFile string `toml:"token_file"`

	// Secrets are the contents of SecretFiles, read by Load.
	Secrets [][]byte `toml:"-"`
}

// Duration is a time.Duration written as a string ("90s", "5m").
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("negative duration %s", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Error is a mistake in a configuration file.
type Error struct {
	File string
	Line int // 0 when unknown
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// LoadFile reads, checks and completes the configuration at file: defaults
// filled in, secret files read. Errors are *Error with the line.
func LoadFile(file string) (*Config, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(file, src)
}

// Parse is LoadFile on bytes already read; file names them in errors.
func Parse(file string, src []byte) (*Config, error) {
	var c Config
	md, err := toml.NewDecoder(bytes.NewReader(src)).Decode(&c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: file, Line: pe.Position.Line, Msg: parseMessage(pe)}
		}
		var ppe *toml.ParseError
		if errors.As(err, &ppe) {
			return nil, &Error{File: file, Line: ppe.Position.Line, Msg: parseMessage(*ppe)}
		}
		// Type mismatches come as plain errors: "toml: line N (last key "k"): …".
		if m := decodeErrRE.FindStringSubmatch(err.Error()); m != nil {
			n, _ := strconv.Atoi(m[1])
			return nil, &Error{File: file, Line: n, Msg: m[2] + ": " + m[3]}
		}
		return nil, &Error{File: file, Msg: err.Error()}
	}
	c.file = file
	c.Serve = DefaultServe()
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", file, err)
	}
	c.resolvePaths(dir)
	lines := keyLines(src)
	for _, k := range md.Undecoded() {
		return nil, &Error{File: file, Line: lines.find(k), Msg: fmt.Sprintf("unknown key %q", k.String())}
	}
	if err := c.check(lines); err != nil {
		return nil, err
	}
	return &c, nil
}

func parseMessage(pe toml.ParseError) string {
	if pe.LastKey != "" {
		return fmt.Sprintf("%s: %s", pe.LastKey, pe.Message)
	}
	return pe.Message
}

// resolvePaths makes relative file paths relative to the configuration's directory.
func (c *Config) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.StateDir)
	abs(&c.SigningKeyFile)
	abs(&c.DeployKeyFile)
	for i := range c.Repositories {
		for j := range c.Repositories[i].Remotes {
			m := &c.Repositories[i].Remotes[j]
			abs(&m.TokenFile)
			for k := range m.SecretFiles {
				abs(&m.SecretFiles[k])
			}
		}
	}
}

// Default returns the configuration used without a file.
func Default() *Config {
	c := &Config{file: "(defaults)", Serve: DefaultServe()}
	_ = c.check(nil)
	return c
}

var repoName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func (c *Config) check(lines lineIndex) error {
	fail := func(path string, format string, a ...any) error {
		return &Error{File: c.file, Line: lines.line(path), Msg: fmt.Sprintf(format, a...)}
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxBodyBytes < 0 {
		return fail("max_body_bytes", "max_body_bytes must be positive")
	}
	if c.Queue.MaxAttempts == 0 {
		c.Queue.MaxAttempts = 5
	}
	if c.Queue.MaxAttempts < 0 {
		return fail("queue.max_attempts", "queue.max_attempts must be positive")
	}
	if c.Queue.Lease.Duration == 0 {
		c.Queue.Lease.Duration = 5 * time.Minute
	}
	if u := c.Queue.URL; u != "" && !strings.HasPrefix(u, "sqlite:") && !IsPostgresURL(u) {
		return fail("queue.url", "queue.url %q: want sqlite:[PATH] or postgres://…", redactURL(u))
	}
	if u := c.Database; u != "" && u != "sqlite:" && !IsPostgresURL(u) {
		return fail("database", "database %q: want sqlite: or postgres://…", redactURL(u))
	}
	if IsPostgresURL(c.Database) && c.Queue.URL != "" && c.Queue.URL != c.Database {
		return fail("queue.url", "%s", databaseAndQueue(c))
	}
	if c.Statuses.PerHostLimit == 0 {
		c.Statuses.PerHostLimit = 20
	}
	if c.Statuses.PerHostLimit < 0 {
		return fail("statuses.per_host_limit", "statuses.per_host_limit must be positive")
	}
	if c.Statuses.Context == "" {
		c.Statuses.Context = "farm"
	}
	names := map[string]bool{}
	seen := map[string]string{} // normalised remote URL -> repository
	for i := range c.Repositories {
		r := &c.Repositories[i]
		at := fmt.Sprintf("repository[%d]", i)
		if !repoName.MatchString(r.Name) {
			return fail(at+".name", "repository %d: name %q: want letters, digits, '.', '_' or '-'", i+1, r.Name)
		}
		if names[r.Name] {
			return fail(at+".name", "repository %q is defined twice", r.Name)
		}
		names[r.Name] = true
		if r.DeployBranch == "" {
			r.DeployBranch = "main"
		}
		for _, b := range r.Branches {
			if _, err := path.Match(b, "x"); err != nil {
				return fail(at+".branches", "repository %q: branch pattern %q: %v", r.Name, b, err)
			}
		}
		if len(r.Remotes) == 0 {
			return fail(at, "repository %q has no [[repository.remote]]", r.Name)
		}
		for j := range r.Remotes {
			m := &r.Remotes[j]
			rat := fmt.Sprintf("%s.remote[%d]", at, j)
			switch m.Forge {
			case forge.GitHub, forge.Forgejo:
			case "codeberg", "gitea":
				m.Forge = forge.Forgejo
			default:
				return fail(rat+".forge", "repository %q: remote %d: forge %q: want github, forgejo, codeberg or gitea", r.Name, j+1, m.Forge)
			}
			n := forge.NormalizeURL(m.URL)
			if n == "" || strings.Count(strings.Trim(n, "/"), "/") < 2 {
				return fail(rat+".url", "repository %q: remote %d: url %q: want https://host/owner/name", r.Name, j+1, m.URL)
			}
			if other, dup := seen[n]; dup {
				return fail(rat+".url", "repository %q: remote %s is already a remote of %q", r.Name, m.URL, other)
			}
			seen[n] = r.Name
			if m.APIURL != "" && forge.NormalizeURL(m.APIURL) == "" {
				return fail(rat+".api_url", "repository %q: remote %d: api_url %q is not an http(s) URL", r.Name, j+1, m.APIURL)
			}
			if len(m.SecretFiles) == 0 {
				return fail(rat, "repository %q: remote %s: no secret_files (unsigned webhooks are refused)", r.Name, m.URL)
			}
			m.Secrets = m.Secrets[:0]
			for _, f := range m.SecretFiles {
				s, err := secretfile.Read(f, "secret")
				if err != nil {
					return fail(rat+".secret_files", "repository %q: remote %s: %v", r.Name, m.URL, err)
				}
				m.Secrets = append(m.Secrets, []byte(s))
			}
			if m.TokenFile != "" {
				if _, err := os.Stat(m.TokenFile); err != nil {
					return fail(rat+".token_file", "repository %q: remote %s: token file: %v", r.Name, m.URL, err)
				}
			}
		}
	}
	return nil
}

// Validate checks the settings that flags and the environment may have
// changed after Load.
func (c *Config) Validate() error {
	if err := checkDeploySigner(c.DeployKeyFile, c.Serve.DeploySigner); err != nil {
		return err
	}
	if c.Serve.ManifestTTL < time.Minute {
		return fmt.Errorf("--manifest-ttl %v: want at least a minute", c.Serve.ManifestTTL)
	}
	if c.Listen == "" {
		return errors.New("no listen address")
	}
	if c.StateDir == "" {
		return errors.New("no state directory (--state-dir, BUILDER_STATE_DIR or state_dir)")
	}
	if u := c.Database; u != "" && u != "sqlite:" && !IsPostgresURL(u) {
		return fmt.Errorf("database %q: want sqlite: or postgres://…", redactURL(u))
	}
	if IsPostgresURL(c.Database) {
		if c.Queue.URL != "" && c.Queue.URL != c.Database {
			return errors.New(databaseAndQueue(c))
		}
		c.Queue.URL = c.Database
	}
	return c.Serve.validateLimits(c.MaxBodyBytes)
}

// What strangers on the network may hold of the builder by default. The
// webhook budget holds one body of the largest size (25 MiB) at a time, and
// many of the usual few kilobytes: a burst of 20 MiB posts keeps the
// builder near 100 MiB resident, garbage included (BenchmarkWebhookBurst).
// The budget is max_body_bytes when that is larger.
const (
	DefaultWebhookBudget = 32 << 20
	DefaultMaxStreams    = 64
	DefaultStallTimeout  = 60 * time.Second
)

// validateLimits checks the limits and fills in the default budget;
// maxBody is the largest webhook body accepted, which the budget must hold.
func (s *Serve) validateLimits(maxBody int64) error {
	if s.WebhookBudget == 0 {
		s.WebhookBudget = max(DefaultWebhookBudget, maxBody)
	}
	if s.MaxStreams <= 0 || s.StallTimeout <= 0 {
		return errors.New("--max-streams and --stall-timeout must be positive")
	}
	if s.WebhookBudget < maxBody {
		return fmt.Errorf("--webhook-body-budget %d is below max_body_bytes %d: the largest webhook could never be read", s.WebhookBudget, maxBody)
	}
	return nil
}

// checkDeploySigner checks the choice of deploy signing: a key file
// (--deploy-key-file or deploy_key_file), a signer socket (--deploy-signer
// unix:PATH), or neither (a key made in the state directory); never both.
func checkDeploySigner(keyFile, signerAddr string) error {
	if signerAddr == "" {
		return nil
	}
	if keyFile != "" {
		return errors.New("--deploy-key-file and --deploy-signer are exclusive: the key is either held by serve or by the signer")
	}
	if p, ok := strings.CutPrefix(signerAddr, "unix:"); !ok || p == "" {
		return fmt.Errorf("--deploy-signer %q: want unix:PATH", signerAddr)
	}
	return nil
}

func databaseAndQueue(c *Config) string {
	return fmt.Sprintf("queue.url %q and database %q: the database holds the queue too; leave queue.url empty",
		redactURL(c.Queue.URL), redactURL(c.Database))
}

// Branch reports whether a push to branch is evaluated and whether it deploys.
func (r *Repository) Branch(branch string) (evaluate, deploy bool) {
	if branch == "" {
		return false, false
	}
	if branch == r.DeployBranch {
		return true, true
	}
	if len(r.Branches) == 0 {
		return true, false
	}
	for _, p := range r.Branches {
		if ok, _ := path.Match(p, branch); ok {
			return true, false
		}
	}
	return false, false
}

// ReadToken reads a remote's API token file.
// No file configured gives no token; an empty file is an error.
func (m *Remote) ReadToken() (string, error) {
	if m.TokenFile == "" {
		return "", nil
	}
	return secretfile.Read(m.TokenFile, "token")
}

func redactURL(u string) string {
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			return u[:j+3] + "…" + u[i:]
		}
	}
	return u
}

// lineIndex maps a key path ("repository[0].remote[1].url", "queue.lease",
// "repository[0]") to the line that defines it.
type lineIndex map[string]int

func (l lineIndex) line(path string) int {
	for path != "" {
		if n, ok := l[path]; ok {
			return n
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// find locates a toml.Key (which has no array indices) by its last
// occurrence: close enough for "unknown key" messages.
func (l lineIndex) find(k toml.Key) int {
	want := strings.Join(k, ".")
	best := 0
	for p, n := range l {
		if stripIndices(p) == want && n > best {
			best = n
		}
	}
	if best == 0 && len(k) > 1 {
		return l.find(k[:len(k)-1])
	}
	return best
}

var decodeErrRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

var indexRE = regexp.MustCompile(`\[\d+\]`)

func stripIndices(p string) string { return indexRE.ReplaceAllString(p, "") }

var (
	headerRE = regexp.MustCompile(`^\s*(\[\[?)\s*([A-Za-z0-9_.\-" ]+?)\s*\]\]?`)
	keyRE    = regexp.MustCompile(`^\s*([A-Za-z0-9_\-]+)\s*=`)
)

// keyLines scans TOML source for table headers and keys, tracking array of
// tables indices the way the decoder numbers them.
func keyLines(src []byte) lineIndex {
	idx := lineIndex{}
	count := map[string]int{} // array path (with parent indices) -> elements so far
	last := map[string]string{}
	current := ""
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		if m := headerRE.FindStringSubmatch(text); m != nil {
			parts := strings.Split(strings.ReplaceAll(m[2], `"`, ""), ".")
			// Resolve parents to their latest array element.
			resolved := ""
			for i, p := range parts {
				p = strings.TrimSpace(p)
				if resolved != "" {
					resolved += "."
				}
				resolved += p
				if i < len(parts)-1 {
					if el, ok := last[resolved]; ok {
						resolved = el
					}
				}
			}
			if m[1] == "[[" {
				el := resolved + "[" + strconv.Itoa(count[resolved]) + "]"
				count[resolved]++
				last[resolved] = el
				resolved = el
			}
			current = resolved
			idx[current] = n
			continue
		}
		if m := keyRE.FindStringSubmatch(text); m != nil {
			p := m[1]
			if current != "" {
				p = current + "." + p
			}
			idx[p] = n
		}
	}
	return idx
}

// IsPostgresURL reports whether u is a postgres:// or postgresql:// URL.
func IsPostgresURL(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}
