package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/homelab-farm/farm/internal/agent/window"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/failover"
	"github.com/homelab-farm/farm/internal/farmapi"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/nixkey"
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
	Host string
	// BuilderURLs are the base URLs (without /api) of the farm's builder
	// instances: every request goes to the one that answered last, and on
	// to the next when it cannot be reached, times out or answers 5xx.
	BuilderURLs []string
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

	// SwitchMode ModeBoot makes every update boot-only (reported as
	// switched); with ModeSwitch, Window says when a switch may happen.
	SwitchMode string
	// Window says when a switch may happen and what to do outside it
	// (install for the next boot, or wait); the zero Policy switches
	// always.
	Window window.Policy
	// Loginctl is the loginctl asked who is at the keyboard, for a
	// when-idle window; "" means loginctl on PATH.
	Loginctl string
	// SessionPoll is how often the sessions are read again while a switch
	// waits for a person to leave the keyboard; 0 means one minute.
	SessionPoll time.Duration

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
	if len(c.BuilderURLs) == 0 {
		errs = append(errs, errors.New("no builder URL"))
	} else if _, err := failover.New(c.BuilderURLs); err != nil {
		errs = append(errs, fmt.Errorf("builder URLs: %w", err))
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
	if c.SessionPoll <= 0 {
		c.SessionPoll = time.Minute
	}
	switch c.Window.Outside {
	case "", window.OutsideBoot, window.OutsideWait:
	default:
		errs = append(errs, fmt.Errorf("outside the window %q: want boot or wait", c.Window.Outside))
	}
	if c.Window.IdleFor < 0 {
		errs = append(errs, fmt.Errorf("idle time %v: want zero or more", c.Window.IdleFor))
	}
	return errors.Join(errs...)
}

// Agent checks for, applies and reports updates of one host.
type Agent struct {
	cfg      Config
	nix      Nix
	http     *http.Client
	builders *failover.Pool
	log      *slog.Logger
	now      func() time.Time
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
	log = log.With(logHost, cfg.Host)
	builders, err := failover.New(cfg.BuilderURLs)
	if err != nil {
		panic("agent.New: configuration not validated: " + err.Error())
	}
	builders.Log = log
	return &Agent{cfg: cfg, nix: n, http: httpClient, builders: builders, log: log, now: time.Now}
}

// Outcome is what one check came to: the report the builder is sent
// (farmapi.Report), and whether to check again soon.
type Outcome struct {
	Current string // the store path running after the check
	Result  farmapi.Result
	Reason  string
	Seq     uint64 // the manifest acted on
	// Retry says the failure may pass by itself (the cache unreachable, a
	// path not pushed yet): check again soon rather than at the next
	// interval.
	Retry bool
	// Next is when to check again because the window may open (or the
	// person leave the keyboard) then; zero: at the next interval.
	Next time.Time
}

// Report is what the builder is told of o.
func (o Outcome) Report() farmapi.Report {
	return farmapi.Report{Current: o.Current, Result: o.Result, Reason: o.Reason, Seq: o.Seq}
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
		return Outcome{Current: current, Result: farmapi.ResultUpToDate, Reason: "no desired closure"}, nil
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
		return Outcome{Current: current, Result: farmapi.ResultFailed, Reason: "refused manifest: " + err.Error(), Seq: st.LastSeq, Retry: retry}, nil
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
		switch st.Result {
		case farmapi.ResultRolledBack, farmapi.ResultFailed:
			// Still the manifest that failed here: say so again, so the
			// builder does not take the host for up to date.
			return Outcome{Current: current, Result: st.Result, Reason: st.Reason, Seq: m.Seq}, nil
		case farmapi.ResultInstalled, farmapi.ResultWaiting:
			if current == m.StorePath {
				// The host booted into the closure installed for boot (or
				// someone switched to it by hand).
				if err := a.remember(m, farmapi.ResultSwitched, ""); err != nil {
					return Outcome{}, err
				}
				return Outcome{Current: current, Result: farmapi.ResultSwitched, Seq: m.Seq}, nil
			}
			// Held back by the window: ask it again.
			return a.offer(ctx, st, m, current)
		}
		return Outcome{Current: current, Result: farmapi.ResultUpToDate, Seq: m.Seq}, nil
	}
	if m.StorePath == current {
		if err := a.remember(m, farmapi.ResultUpToDate, ""); err != nil {
			return Outcome{}, err
		}
		return Outcome{Current: current, Result: farmapi.ResultUpToDate, Seq: m.Seq}, nil
	}
	return a.offer(ctx, st, m, current)
}
