package nix

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/homelab-farm/farm/internal/hostname"
)

// Target is one host's system closure as the flake defines it.
type Target struct {
	Host    string `json:"host"`
	Kind    string `json:"kind"` // "nixos" or "darwin"
	System  string `json:"system"`
	DrvPath string `json:"drvPath"`
	OutPath string `json:"outPath"`
	// Error is set when this host's evaluation failed; the other fields but
	// Host and Kind are then empty.
	Error string `json:"error,omitempty"`
}

// ErrMemoryBudget is wrapped by the error of an evaluation stopped because
// it went over its memory budget.
var ErrMemoryBudget = errors.New("evaluation exceeded its memory budget")

// EvalOptions tune Eval.
type EvalOptions struct {
	// MemoryBudget stops one host's evaluation when its resident memory
	// goes above it; 0 means DefaultMemoryBudget().
	MemoryBudget int64
	// Timeout bounds one host's evaluation; 0 means 10 minutes.
	Timeout time.Duration
	// Jobs is how many hosts are evaluated at once; 0 means as many as
	// there are CPUs and memory budgets in the memory available now.
	Jobs int
}

// DefaultMemoryBudget is a quarter of the memory available now, kept
// between 2 and 4 GiB.
func DefaultMemoryBudget() int64 {
	const gib = 1 << 30
	avail := memAvailable()
	return min(max(avail/4, 2*gib), 4*gib)
}

func memAvailable() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// configKinds are the flake outputs that hold hosts, and the attribute of
// each host that is its system closure.
var configKinds = []struct{ kind, attr string }{
	{"nixos", "nixosConfigurations"},
	{"darwin", "darwinConfigurations"},
}

// Hosts lists the hosts of a flake: the names under nixosConfigurations and
// darwinConfigurations. flake is a flake reference ("path:/x", "git+file:///x?rev=...").
// This is where host names enter the farm: a name that is not a valid host
// name (see TargetsFromNames) comes back as a failed Target.
func (c *Client) Hosts(ctx context.Context, flake string) ([]Target, error) {
	var hosts []Target
	for _, k := range configKinds {
		out, err := c.output(ctx, "nix", "eval", "--json", "--no-write-lock-file",
			flake+"#"+k.attr, "--apply", "builtins.attrNames")
		var nerr *Error
		if errors.As(err, &nerr) && strings.Contains(nerr.Stderr, "does not provide attribute") {
			continue // the flake has no hosts of this kind
		}
		if err != nil {
			return nil, err
		}
		var names []string
		if err := json.Unmarshal(out, &names); err != nil {
			return nil, fmt.Errorf("parse host list: %w", err)
		}
		hosts = append(hosts, TargetsFromNames(k.kind, names)...)
	}
	sort.Slice(hosts, func(i, j int) bool { return hosts[i].Host < hosts[j].Host })
	return hosts, nil
}

// TargetsFromNames makes one Target of kind per attribute name. A name that
// is not a valid host name is never used as one: its Target is failed, with
// the reason naming it quoted, and its Host is hostname.Placeholder(name),
// so that nothing downstream (paths, status contexts, headers) sees it.
func TargetsFromNames(kind string, names []string) []Target {
	ts := make([]Target, 0, len(names))
	for _, n := range names {
		if err := hostname.Validate(n); err != nil {
			ts = append(ts, Target{Host: hostname.Placeholder(n), Kind: kind, Error: err.Error()})
			continue
		}
		ts = append(ts, Target{Host: n, Kind: kind})
	}
	return ts
}

// Eval evaluates every host of the flake, each in its own nix process
// bounded by the memory budget and timeout. One host's failure is recorded
// in its Target.Error and never stops the others; the error is for failures
// to list the hosts at all.
func (c *Client) Eval(ctx context.Context, flake string, opts EvalOptions) ([]Target, error) {
	hosts, err := c.Hosts(ctx, flake)
	if err != nil {
		return nil, err
	}
	jobs := opts.Jobs
	if jobs <= 0 {
		budget := opts.MemoryBudget
		if budget <= 0 {
			budget = DefaultMemoryBudget()
		}
		jobs = min(runtime.GOMAXPROCS(0), int(memAvailable()/budget))
	}
	jobs = max(jobs, 1)
	sem := make(chan struct{}, jobs)
	done := make(chan struct{}, len(hosts))
	for i := range hosts {
		if hosts[i].Error != "" {
			done <- struct{}{}
			continue
		}
		go func() {
			defer func() { done <- struct{}{} }()
			sem <- struct{}{}
			defer func() { <-sem }()
			t, err := c.EvalHost(ctx, flake, hosts[i].Host, hosts[i].Kind, opts)
			if err != nil {
				hosts[i].Error = err.Error()
				return
			}
			hosts[i] = t
		}()
	}
	for range hosts {
		<-done
	}
	return hosts, ctx.Err()
}

// EvalHost evaluates one host's system closure. host must be a valid host
// name (hostname.Validate).
func (c *Client) EvalHost(ctx context.Context, flake, host, kind string, opts EvalOptions) (Target, error) {
	if err := hostname.Validate(host); err != nil {
		return Target{}, err
	}
	attr := "nixosConfigurations"
	if kind == "darwin" {
		attr = "darwinConfigurations"
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	budget := opts.MemoryBudget
	if budget <= 0 {
		budget = DefaultMemoryBudget()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	installable := fmt.Sprintf("%s#%s.%s.config.system.build.toplevel", flake, attr, strconv.Quote(host))
	// Not "outPath": JSON turns an attribute set with outPath into that string.
	apply := `d: { drv = d.drvPath; out = d.outPath; system = d.system; }`
	cmd := c.command(ctx, "nix", "eval", "--json", "--no-write-lock-file", installable, "--apply", apply)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	over, err := runWithMemoryBudget(ctx, cmd, budget)
	if over {
		return Target{}, fmt.Errorf("%w of %d MiB", ErrMemoryBudget, budget>>20)
	}
	if err != nil {
		if ctx.Err() != nil {
			return Target{}, fmt.Errorf("evaluation of %s: %w", host, ctx.Err())
		}
		return Target{}, &Error{Cmd: "nix eval", Stderr: stderr.String(), Err: err}
	}
	var r struct{ Drv, Out, System string }
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return Target{}, fmt.Errorf("parse evaluation of %s: %w", host, err)
	}
	return Target{Host: host, Kind: kind, System: r.System, DrvPath: r.Drv, OutPath: r.Out}, nil
}

// runWithMemoryBudget runs cmd, polling the resident memory of its process
// group, and kills the group when it goes over budget (then over is true).
func runWithMemoryBudget(ctx context.Context, cmd *exec.Cmd, budget int64) (over bool, err error) {
	if err := cmd.Start(); err != nil {
		return false, err
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-waited:
			return over, err
		case <-tick.C:
			if !over && rss(cmd.Process.Pid) > budget {
				over = true
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
		}
	}
}

// rss returns the resident set size of pid in bytes (0 if unknown).
func rss(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
