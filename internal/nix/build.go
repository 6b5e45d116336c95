package nix

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// BuildOptions tune Realise.
type BuildOptions struct {
	// MaxSilent fails a build that prints nothing for this long; 0: no limit.
	MaxSilent time.Duration
	// Timeout fails a build that runs longer; 0: no limit.
	Timeout time.Duration
	// Builders overrides Nix's remote builders ("ssh-ng://host aarch64-linux ...").
	Builders string
	// Log receives the build's output as it runs.
	Log io.Writer
	// AddRoot, if set, is a symlink made a garbage-collector root of the
	// outputs, so that no GC removes them before they are pushed.
	AddRoot string
}

// Realise builds a derivation (or substitutes its outputs) and returns its
// output paths.
func (c *Client) Realise(ctx context.Context, drvPath string, opts BuildOptions) ([]string, error) {
	args := []string{"--realise", drvPath}
	if opts.MaxSilent > 0 {
		args = append(args, "--option", "max-silent-time", strconv.Itoa(int(opts.MaxSilent.Seconds())))
	}
	if opts.Timeout > 0 {
		args = append(args, "--option", "timeout", strconv.Itoa(int(opts.Timeout.Seconds())))
	}
	if opts.Builders != "" {
		args = append(args, "--option", "builders", opts.Builders)
	}
	if opts.AddRoot != "" {
		args = append(args, "--add-root", opts.AddRoot)
	}
	cmd := c.command(ctx, "nix-store", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	tail := &tailWriter{max: 4096}
	if opts.Log != nil {
		cmd.Stderr = io.MultiWriter(opts.Log, tail)
	} else {
		cmd.Stderr = tail
	}
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("build %s: %w", drvPath, ctx.Err())
		}
		return nil, &Error{Cmd: "nix-store --realise", Stderr: tail.String(), Err: err}
	}
	paths := strings.Fields(string(out))
	if opts.AddRoot != "" {
		// nix-store prints the roots it made; the outputs are their targets.
		for i, p := range paths {
			if target, err := os.Readlink(p); err == nil {
				paths[i] = target
			}
		}
	}
	return paths, nil
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	max int
	buf []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailWriter) String() string { return string(t.buf) }

// Systems returns the systems builds can run for: this machine's own and
// its extra-platforms (aarch64-linux through binfmt/qemu) unless max-jobs
// is 0, and those of its remote builders (builders, or Nix's configured
// ones when empty). See Capacity.
func (c *Client) Systems(ctx context.Context, builders string) ([]string, error) {
	capa, err := c.Capacity(ctx, builders)
	if err != nil {
		return nil, err
	}
	return capa.Systems(), nil
}

// buildConfig is what Nix's configuration says about where builds run.
type buildConfig struct {
	system         string
	extraPlatforms []string
	builders       string // Nix's own `builders` setting
	maxJobs        int    // Nix's max-jobs; -1 when not a number ("auto")
}

// buildConfig reads `nix show-config`.
func (c *Client) buildConfig(ctx context.Context) (buildConfig, error) {
	out, err := c.output(ctx, "nix", "show-config", "--json")
	if err != nil {
		return buildConfig{}, err
	}
	var raw map[string]struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return buildConfig{}, fmt.Errorf("parse nix show-config: %w", err)
	}
	var cfg buildConfig
	_ = json.Unmarshal(raw["system"].Value, &cfg.system)
	_ = json.Unmarshal(raw["extra-platforms"].Value, &cfg.extraPlatforms)
	_ = json.Unmarshal(raw["builders"].Value, &cfg.builders)
	cfg.maxJobs = maxJobs(raw["max-jobs"].Value)
	return cfg, nil
}

// machines parses builders, or Nix's own setting when builders is empty.
func (cfg buildConfig) machines(builders string) ([]Machine, error) {
	if builders == "" {
		builders = cfg.builders
	}
	machines, err := ParseMachines(builders, cfg.system)
	if err != nil {
		return nil, fmt.Errorf("remote builders: %w", err)
	}
	return machines, nil
}
