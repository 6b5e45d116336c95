package nix

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// GCResult is what a garbage collection of a store removed.
type GCResult struct {
	Paths int
	// Bytes freed, as Nix reports them (to a hundredth of a MiB).
	Bytes int64
}

// gcSummary is the line nix-store --gc ends with.
var gcSummary = regexp.MustCompile(`(?m)^(\d+) store paths deleted, ([0-9.]+) MiB freed`)

// parseGCSummary reads the summary line of nix-store --gc.
func parseGCSummary(out string) (GCResult, error) {
	m := gcSummary.FindStringSubmatch(out)
	if m == nil {
		return GCResult{}, fmt.Errorf("no summary in nix-store --gc output %q", strings.TrimSpace(out))
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return GCResult{}, fmt.Errorf("nix-store --gc summary %q: %w", m[0], err)
	}
	mib, err := strconv.ParseFloat(m[2], 64)
	if err != nil {
		return GCResult{}, fmt.Errorf("nix-store --gc summary %q: %w", m[0], err)
	}
	return GCResult{Paths: n, Bytes: int64(mib * (1 << 20))}, nil
}

// CollectGarbage deletes the paths of store ("" for Nix's default) that no
// garbage collector root reaches (nix-store --gc), stopping once maxFreed
// bytes are freed when maxFreed is above 0 (--max-freed).
func (c *Client) CollectGarbage(ctx context.Context, store string, maxFreed int64) (GCResult, error) {
	args := append([]string{"--gc"}, storeArgs(store)...)
	if maxFreed > 0 {
		args = append(args, "--max-freed", strconv.FormatInt(maxFreed, 10))
	}
	out, err := c.output(ctx, "nix-store", args...)
	if err != nil {
		return GCResult{}, fmt.Errorf("collect garbage: %w", err)
	}
	return parseGCSummary(string(out))
}

// AddRoot makes link a garbage collector root of path, which must be valid
// in store: a symlink to path, registered with the store as an indirect
// root (nix-store --realise --add-root). An existing link is replaced.
func (c *Client) AddRoot(ctx context.Context, store, link, path string) error {
	if err := ValidateStorePath(path); err != nil {
		return fmt.Errorf("add root %s: %w", link, err)
	}
	args := append([]string{"--realise"}, storeArgs(store)...)
	args = append(args, "--add-root", link, path) // path is validated: no option
	if _, err := c.output(ctx, "nix-store", args...); err != nil {
		return fmt.Errorf("add root %s to %s: %w", link, path, err)
	}
	return nil
}

// ValidPaths returns the paths that store holds, in the order given.
func (c *Client) ValidPaths(ctx context.Context, store string, paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	for _, p := range paths {
		if err := ValidateStorePath(p); err != nil {
			return nil, fmt.Errorf("valid paths: %w", err)
		}
	}
	args := append([]string{"--check-validity", "--print-invalid"}, storeArgs(store)...)
	out, err := c.output(ctx, "nix-store", append(args, paths...)...)
	if err != nil {
		return nil, fmt.Errorf("valid paths: %w", err)
	}
	invalid := make(map[string]bool)
	for _, p := range strings.Fields(string(out)) {
		invalid[p] = true
	}
	var valid []string
	for _, p := range paths {
		if !invalid[p] {
			valid = append(valid, p)
		}
	}
	return valid, nil
}
