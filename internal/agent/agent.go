// Package agent is the host side of the farm: it fetches the host's deploy
// manifest from the builder, checks the farm's signature, the host name and
// the sequence number, realises the closure from the farm's cache trusting
// only the cache's key, sets the system profile, activates the closure, runs
// health checks, re-activates exactly the previous closure when anything
// fails, keeps N profile generations and reports the outcome to the builder.
//
// An Agent's Check may not run concurrently with itself; Run serialises the
// checks that timers, pokes and resumes ask for.
package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/nixkey"
)

// Results an agent reports, as the builder's API names them.
const (
	ResultSwitched   = "switched"
	ResultUpToDate   = "up-to-date"
	ResultRolledBack = "rolled back"
	ResultFailed     = "failed"
)

// Switch modes: activate now, or make the closure the boot default only.
const (
	ModeSwitch = "switch"
	ModeBoot   = "boot"
)

// Log attribute keys.
const (
	logHost   = "host"
	logPath   = "store_path"
	logSeq    = "seq"
	logResult = "result"
	logReason = "reason"
	logErr    = "err"
)

// Nix is what the agent needs of the Nix tools. *nix.Client implements it.
// Every method may be slow (it runs a command) and returns that command's
// error.
type Nix interface {
	RealiseFrom(ctx context.Context, path string, opts nix.SubstituteOptions) error
	SetProfile(ctx context.Context, store, profile, path string) error
	Generations(ctx context.Context, store, profile string) ([]nix.Generation, error)
	DeleteGenerations(ctx context.Context, store, profile string, ids ...int) error
}

var _ Nix = (*nix.Client)(nil)

// Config is an agent's configuration.
type Config struct {
	Host       string
	BuilderURL string // the builder's base URL, without /api
	// Token is the host's bearer token for reports; empty: reports are not
	// sent.
	Token      string
	DeployKeys []nixkey.PublicKey // keys whose manifests are trusted
	// ClockSkew is how far this host's clock may run ahead of the
	// builder's: a manifest is refused as expired only this long after
	// its expiry.
	ClockSkew time.Duration
	// CacheURL is the binary cache to realise from; empty: the manifest's.
	CacheURL string
	CacheKey string // the only key ("name:base64") trusted for substitution

	SwitchMode    string   // ModeSwitch or ModeBoot
	HealthChecks  []string // shell commands that must succeed after a switch
	HealthTimeout time.Duration
	// SystemdHealth makes a switch fail when systemd units that had not
	// failed before it have failed after it (systemd must run).
	SystemdHealth   bool
	Systemctl       string // the systemctl to ask; "" means systemctl on PATH
	KeepGenerations int

	CurrentSystem string // /run/current-system
	Profile       string // /nix/var/nix/profiles/system
	Store         string // "" or a chroot store such as local?root=/tmp/x
	StateDir      string

	SwitchTimeout time.Duration
	Env           []string // environment of switch-to-configuration and checks; nil: the agent's
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.Host == "" {
		errs = append(errs, errors.New("no host name"))
	}
	if u, err := url.Parse(c.BuilderURL); c.BuilderURL == "" || err != nil || u.Host == "" {
		errs = append(errs, fmt.Errorf("builder URL %q is not an absolute URL", c.BuilderURL))
	}
	if len(c.DeployKeys) == 0 {
		errs = append(errs, errors.New("no deploy public key: the agent applies only signed manifests"))
	}
	if c.CacheKey == "" {
		errs = append(errs, errors.New("no cache public key"))
	} else if _, err := nixkey.ParsePublicKey(c.CacheKey); err != nil {
		errs = append(errs, fmt.Errorf("cache public key: %w", err))
	}
	switch c.SwitchMode {
	case "":
		c.SwitchMode = ModeSwitch
	case ModeSwitch, ModeBoot:
	default:
		errs = append(errs, fmt.Errorf("switch mode %q: want switch or boot", c.SwitchMode))
	}
	if c.KeepGenerations < 1 {
		errs = append(errs, fmt.Errorf("keep generations %d: want at least 1", c.KeepGenerations))
	}
	if c.CurrentSystem == "" || c.Profile == "" || c.StateDir == "" {
		errs = append(errs, errors.New("current system, profile and state directory are needed"))
	}
	if c.ClockSkew < 0 {
		errs = append(errs, fmt.Errorf("clock skew %v: want zero or more", c.ClockSkew))
	}
	if c.HealthTimeout <= 0 {
		c.HealthTimeout = 2 * time.Minute
	}
	if c.SwitchTimeout <= 0 {
		c.SwitchTimeout = 10 * time.Minute
	}
	return errors.Join(errs...)
}

// Agent checks for, applies and reports updates of one host.
type Agent struct {
	cfg  Config
	nix  Nix
	http *http.Client
	log  *slog.Logger
	now  func() time.Time
}

// New returns an agent. cfg must be valid (Validate). httpClient talks to
// the builder (nil: a client with a 30 s timeout).
func New(cfg Config, n Nix, httpClient *http.Client, log *slog.Logger) *Agent {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Agent{cfg: cfg, nix: n, http: httpClient, log: log.With(logHost, cfg.Host), now: time.Now}
}

// Outcome is what one check came to; it is also what is reported.
type Outcome struct {
	Current string `json:"current"` // the store path running after the check
	Result  string `json:"result"`
	Reason  string `json:"reason,omitempty"`
	Seq     uint64 `json:"seq,omitempty"` // the manifest acted on
	// Retry says the failure may pass by itself (the cache unreachable, a
	// path not pushed yet): check again soon rather than at the next
	// interval.
	Retry bool `json:"-"`
}

// errNoManifest means the builder has no desired closure for this host.
var errNoManifest = errors.New("the builder has no manifest for this host")

// Check asks the builder for the host's manifest and applies it if it is
// valid and new, then reports the outcome. The returned error is about the
// check itself (builder unreachable, state unreadable); what happened to
// the host is in the Outcome.
func (a *Agent) Check(ctx context.Context) (Outcome, error) {
	out, err := a.check(ctx)
	if err != nil {
		return out, err
	}
	a.log.Info("check done", logResult, out.Result, logPath, out.Current, logSeq, out.Seq, logReason, out.Reason)
	if rerr := a.report(ctx, out); rerr != nil {
		a.log.Warn("report to builder", logErr, rerr)
	}
	return out, nil
}

func (a *Agent) check(ctx context.Context) (Outcome, error) {
	st, err := loadState(a.cfg.StateDir)
	if err != nil {
		return Outcome{}, err
	}
	current, err := a.currentSystem()
	if err != nil {
		return Outcome{}, err
	}
	if st.Pending != nil {
		return a.finishInterrupted(ctx, *st.Pending, current)
	}
	signed, err := a.fetchManifest(ctx)
	if errors.Is(err, errNoManifest) {
		return Outcome{Current: current, Result: ResultUpToDate, Reason: "no desired closure"}, nil
	}
	if err != nil {
		return Outcome{}, err
	}
	// With no state (a first start, or a state directory lost), any
	// validly signed manifest would do: the builder says which seq the
	// host is at, and nothing older is taken. (A deploy between the two
	// requests makes a refusal that the next check, soon, resolves.)
	var floor uint64
	if st.LastSeq == 0 {
		if floor, err = a.builderSeq(ctx); err != nil {
			return Outcome{}, err
		}
	}
	refuse := func(err error, retry bool) (Outcome, error) {
		a.log.Warn("refused manifest", logErr, err)
		return Outcome{Current: current, Result: ResultFailed, Reason: "refused manifest: " + err.Error(), Seq: st.LastSeq, Retry: retry}, nil
	}
	m, err := deploy.Verify(signed, a.cfg.DeployKeys, a.cfg.Host, a.now(), a.cfg.ClockSkew)
	if err != nil {
		// An expired manifest may be renewed soon: look again before the
		// next interval.
		return refuse(err, errors.Is(err, deploy.ErrExpired))
	}
	if m.Seq < floor {
		return refuse(fmt.Errorf("%w: seq %d is below the host's seq %d at the builder", deploy.ErrStale, m.Seq, floor), true)
	}
	order, err := deploy.Compare(m, st.LastSeq, st.StorePath)
	if err != nil {
		return refuse(err, false)
	}
	if order == deploy.Same {
		// The manifest already acted on, or a renewal of it.
		if st.Result == ResultRolledBack || st.Result == ResultFailed {
			// Still the manifest that failed here: say so again, so the
			// builder does not take the host for up to date.
			return Outcome{Current: current, Result: st.Result, Reason: st.Reason, Seq: m.Seq}, nil
		}
		return Outcome{Current: current, Result: ResultUpToDate, Seq: m.Seq}, nil
	}
	if m.StorePath == current {
		if err := a.remember(m, ResultUpToDate, ""); err != nil {
			return Outcome{}, err
		}
		return Outcome{Current: current, Result: ResultUpToDate, Seq: m.Seq}, nil
	}
	return a.apply(ctx, st, m, current)
}

// apply realises, installs and activates m's closure, checks the host's
// health and undoes it all on failure.
func (a *Agent) apply(ctx context.Context, st State, m deploy.Manifest, previous string) (Outcome, error) {
	log := a.log.With(logSeq, m.Seq, logPath, m.StorePath)
	from := a.cfg.CacheURL
	if from == "" {
		from = m.Cache
	}
	log.Info("applying manifest", "previous", previous, "cache", from)
	err := a.nix.RealiseFrom(ctx, m.StorePath, nix.SubstituteOptions{
		From: from, TrustedKeys: []string{a.cfg.CacheKey}, Store: a.cfg.Store,
	})
	if err != nil {
		// Nothing changed on the host; the next check tries again.
		return Outcome{Current: previous, Result: ResultFailed, Reason: err.Error(), Seq: m.Seq, Retry: true}, nil
	}
	// From here on the host changes: a shutdown of the agent lets the
	// update finish (each step has its own timeout) rather than leave the
	// host half switched.
	ctx = context.WithoutCancel(ctx)
	if err := a.setProfile(ctx, m.StorePath); err != nil {
		return Outcome{Current: previous, Result: ResultFailed, Reason: err.Error(), Seq: m.Seq, Retry: true}, nil
	}
	st.Pending = &Pending{Seq: m.Seq, StorePath: m.StorePath, Previous: previous}
	if err := saveState(a.cfg.StateDir, st); err != nil {
		return Outcome{}, err
	}
	failedBefore := a.failedUnits(ctx)
	failure := a.activate(ctx, m.StorePath)
	if failure == nil && a.cfg.SwitchMode == ModeSwitch {
		failure = a.healthCheck(ctx, failedBefore)
	}
	return a.settle(ctx, m, previous, failure)
}

// finishInterrupted completes an update the agent (or the host) stopped in
// the middle of: a closure that became the running system and passes the
// health checks stays; anything else goes back to exactly the previous one.
func (a *Agent) finishInterrupted(ctx context.Context, p Pending, current string) (Outcome, error) {
	ctx = context.WithoutCancel(ctx)
	a.log.Warn("an update was interrupted; finishing it", logSeq, p.Seq, logPath, p.StorePath, "running", current)
	m := deploy.Manifest{Seq: p.Seq, StorePath: p.StorePath}
	var failure error
	switch {
	case a.cfg.SwitchMode == ModeBoot:
		failure = a.activate(ctx, p.StorePath) // idempotent: the boot entry again
	case current == p.StorePath:
		failure = a.healthCheck(ctx, nil) // what failed before is unknown
	default:
		failure = fmt.Errorf("the update to manifest %d was interrupted during activation", p.Seq)
	}
	return a.settle(ctx, m, p.Previous, failure)
}

// settle records the outcome of an activation: kept when failure is nil,
// else undone by re-activating exactly previous.
func (a *Agent) settle(ctx context.Context, m deploy.Manifest, previous string, failure error) (Outcome, error) {
	log := a.log.With(logSeq, m.Seq, logPath, m.StorePath)
	if failure == nil {
		if err := a.remember(m, ResultSwitched, ""); err != nil {
			return Outcome{}, err
		}
		current, _ := a.currentSystem()
		return Outcome{Current: current, Result: ResultSwitched, Seq: m.Seq}, nil
	}

	log.Warn("update failed, rolling back", logReason, failure.Error())
	// The manifest is spent: it is not tried again, only a newer one is.
	out := Outcome{Current: previous, Result: ResultRolledBack, Reason: failure.Error(), Seq: m.Seq}
	switch {
	case previous == "":
		out.Result, out.Reason = ResultFailed, failure.Error()+"; no previous system to roll back to"
	default:
		if err := a.rollback(ctx, previous); err != nil {
			out.Result, out.Reason = ResultFailed, failure.Error()+"; rollback: "+err.Error()
		}
	}
	if out.Result == ResultFailed {
		out.Current, _ = a.currentSystem()
	}
	if err := a.remember(m, out.Result, out.Reason); err != nil {
		return Outcome{}, err
	}
	return out, nil
}

// rollback re-activates exactly the previous store path (not the profile's
// previous generation, which may be something else).
func (a *Agent) rollback(ctx context.Context, previous string) error {
	if err := a.setProfile(ctx, previous); err != nil {
		return err
	}
	return a.activate(ctx, previous)
}

// setProfile makes path the profile's newest generation and prunes the old
// ones before anything is activated, so that the boot menu the activation
// writes lists only the generations kept.
func (a *Agent) setProfile(ctx context.Context, path string) error {
	if err := os.MkdirAll(filepath.Dir(a.cfg.Profile), 0o755); err != nil {
		return fmt.Errorf("set profile: %w", err)
	}
	if err := a.nix.SetProfile(ctx, a.cfg.Store, a.cfg.Profile, path); err != nil {
		return err
	}
	a.pruneGenerations(ctx)
	return nil
}

func (a *Agent) remember(m deploy.Manifest, result, reason string) error {
	return saveState(a.cfg.StateDir, State{LastSeq: m.Seq, StorePath: m.StorePath, Result: result, Reason: reason, Time: a.now().UTC()})
}

// onDisk is where a store path's files are: under the chroot store's root
// in tests, at the path itself on a real host.
func (a *Agent) onDisk(storePath string) string {
	return nix.StoreRoot(a.cfg.Store) + storePath
}

// currentSystem is the store path the current-system link points at, or ""
// when there is none yet.
func (a *Agent) currentSystem() (string, error) {
	target, err := os.Readlink(a.cfg.CurrentSystem)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read current system: %w", err)
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(a.cfg.CurrentSystem), target)
	}
	p, err := nix.StorePath(target)
	if err != nil && nix.StoreRoot(a.cfg.Store) == "" {
		// A chain of links (a profile generation, say): resolve it.
		resolved, rerr := filepath.EvalSymlinks(a.cfg.CurrentSystem)
		if rerr == nil {
			p, err = nix.StorePath(resolved)
		}
	}
	if err != nil {
		return "", fmt.Errorf("current system %s: %w", a.cfg.CurrentSystem, err)
	}
	return p, nil
}

// activate runs the closure's switch-to-configuration in the configured
// mode. In switch mode it then makes sure the current-system link names the
// closure (NixOS's activation does it; the agent does it too, so that a
// closure whose activation does not still leaves the truth behind).
func (a *Agent) activate(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.SwitchTimeout)
	defer cancel()
	bin := a.onDisk(path) + "/bin/switch-to-configuration"
	cmd := exec.CommandContext(ctx, bin, a.cfg.SwitchMode)
	cmd.Env = a.cfg.Env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("switch-to-configuration %s: %w: %s", a.cfg.SwitchMode, err, lastLine(out))
	}
	if a.cfg.SwitchMode != ModeSwitch {
		return nil
	}
	if cur, _ := a.currentSystem(); cur == path {
		return nil
	}
	return replaceSymlink(path, a.cfg.CurrentSystem)
}

// replaceSymlink points link at target atomically.
func replaceSymlink(target, link string) error {
	tmp := link + ".farm-agent-tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link current system: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("link current system: %w", err)
	}
	return nil
}

// healthCheck runs every configured check; the first failure is returned.
// failedBefore are the systemd units that had failed before the switch.
func (a *Agent) healthCheck(ctx context.Context, failedBefore map[string]bool) error {
	for _, c := range a.cfg.HealthChecks {
		if err := a.runCheck(ctx, "/bin/sh", "-c", c); err != nil {
			return fmt.Errorf("health check %q: %w", c, err)
		}
	}
	if a.cfg.SystemdHealth {
		// Wait for the units the switch started to settle; the answer
		// itself ("degraded" because of a unit that failed long ago)
		// does not decide, the failed units do.
		_ = a.runCheck(ctx, a.systemctl(), "is-system-running", "--wait")
		var fresh []string
		for u := range a.failedUnits(ctx) {
			if !failedBefore[u] {
				fresh = append(fresh, u)
			}
		}
		if len(fresh) > 0 {
			sort.Strings(fresh)
			return fmt.Errorf("health check: units failed after the switch: %s", strings.Join(fresh, ", "))
		}
	}
	if err := a.builderReachable(ctx); err != nil {
		return fmt.Errorf("health check: builder unreachable: %w", err)
	}
	return nil
}

func (a *Agent) systemctl() string {
	if a.cfg.Systemctl != "" {
		return a.cfg.Systemctl
	}
	return "systemctl"
}

// failedUnits are the systemd units in the failed state (nil when systemd
// health checks are off or systemctl does not answer).
func (a *Agent) failedUnits(ctx context.Context) map[string]bool {
	if !a.cfg.SystemdHealth {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.HealthTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.systemctl(), "list-units", "--state=failed", "--plain", "--no-legend", "--no-pager")
	cmd.Env = a.cfg.Env
	out, err := cmd.Output()
	if err != nil {
		a.log.Warn("list failed units", logErr, err)
		return nil
	}
	units := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			units[f[0]] = true
		}
	}
	return units
}

func (a *Agent) runCheck(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.HealthTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = a.cfg.Env
	out, err := cmd.CombinedOutput()
	if err != nil {
		if l := lastLine(out); l != "" {
			return fmt.Errorf("%w: %s", err, l)
		}
		return err
	}
	return nil
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// pruneGenerations keeps the newest KeepGenerations generations of the
// profile (and always the current one). Failures are logged: a profile with
// too many generations is no reason to undo a switch.
func (a *Agent) pruneGenerations(ctx context.Context) {
	gens, err := a.nix.Generations(ctx, a.cfg.Store, a.cfg.Profile)
	if err != nil {
		a.log.Warn("list generations", logErr, err)
		return
	}
	var drop []int
	for i, g := range gens {
		if len(gens)-i > a.cfg.KeepGenerations && !g.Current {
			drop = append(drop, g.ID)
		}
	}
	if err := a.nix.DeleteGenerations(ctx, a.cfg.Store, a.cfg.Profile, drop...); err != nil {
		a.log.Warn("delete generations", logErr, err)
	}
}

func (a *Agent) api(path string) string {
	return strings.TrimSuffix(a.cfg.BuilderURL, "/") + path
}

// fetchManifest gets the host's signed manifest; errNoManifest on 404.
func (a *Agent) fetchManifest(ctx context.Context) (deploy.Signed, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.api("/api/hosts/"+url.PathEscape(a.cfg.Host)+"/manifest"), nil)
	if err != nil {
		return deploy.Signed{}, fmt.Errorf("fetch manifest: %w", err)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return deploy.Signed{}, fmt.Errorf("fetch manifest: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return deploy.Signed{}, errNoManifest
	case resp.StatusCode != http.StatusOK:
		return deploy.Signed{}, fmt.Errorf("fetch manifest: builder answered %s", resp.Status)
	}
	var s deploy.Signed
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&s); err != nil {
		// Unreadable JSON is as good as a tampered manifest: refuse it the
		// same way, by handing Verify an empty one.
		return deploy.Signed{}, nil
	}
	return s, nil
}

// builderSeq asks the builder for the seq of the host's current manifest
// (0: none), with the host's token. Without a token it cannot ask: it says
// so in the log and answers 0, the protection a token-less agent had before.
func (a *Agent) builderSeq(ctx context.Context) (uint64, error) {
	if a.cfg.Token == "" {
		a.log.Warn("no local state and no agent token: cannot ask the builder for this host's seq; any unexpired signed manifest is taken")
		return 0, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.api("/api/hosts/"+url.PathEscape(a.cfg.Host)+"/seq"), nil)
	if err != nil {
		return 0, fmt.Errorf("ask builder for seq: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+a.cfg.Token)
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("ask builder for seq: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("ask builder for seq: builder answered %s", resp.Status)
	}
	var v struct {
		Seq *uint64 `json:"seq"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&v); err != nil || v.Seq == nil {
		return 0, fmt.Errorf("ask builder for seq: malformed answer")
	}
	return *v.Seq, nil
}

// builderReachable is one health check: the host can still talk to the farm.
func (a *Agent) builderReachable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.HealthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.api("/api/hosts/"+url.PathEscape(a.cfg.Host)+"/manifest"), nil)
	if err != nil {
		return err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("builder answered %s", resp.Status)
	}
	return nil
}

// report tells the builder the outcome of a check.
func (a *Agent) report(ctx context.Context, out Outcome) error {
	if a.cfg.Token == "" {
		return nil
	}
	body, err := json.Marshal(struct {
		Outcome
		Time time.Time `json:"time"`
	}{out, a.now().UTC()})
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.api("/api/hosts/"+url.PathEscape(a.cfg.Host)+"/report"), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.cfg.Token)
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("report: builder answered %s", resp.Status)
	}
	return nil
}
