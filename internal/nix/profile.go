package nix

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Generation is one numbered generation of a profile.
type Generation struct {
	ID      int
	Current bool // the generation the profile points at
}

// storeArgs is the --store option for store, if any.
func storeArgs(store string) []string {
	if store == "" {
		return nil
	}
	return []string{"--store", store}
}

// SetProfile makes path the profile's new generation (nix-env -p PROFILE
// --set PATH), which also makes it a garbage collector root. store is as in
// SubstituteOptions.Store; path must be valid in it.
func (c *Client) SetProfile(ctx context.Context, store, profile, path string) error {
	args := append([]string{"-p", profile}, storeArgs(store)...)
	args = append(args, "--set", path)
	if _, err := c.output(ctx, "nix-env", args...); err != nil {
		return fmt.Errorf("set profile %s to %s: %w", profile, path, err)
	}
	return nil
}

// Generations lists the profile's generations, oldest first. A profile
// that does not exist yet has none.
func (c *Client) Generations(ctx context.Context, store, profile string) ([]Generation, error) {
	args := append([]string{"-p", profile}, storeArgs(store)...)
	args = append(args, "--list-generations")
	out, err := c.output(ctx, "nix-env", args...)
	if err != nil {
		return nil, fmt.Errorf("list generations of %s: %w", profile, err)
	}
	return parseGenerations(string(out))
}

// parseGenerations reads nix-env --list-generations output:
//
//	1   2026-11-25 20:03:03
//	2   2026-11-25 20:03:03   (current)
func parseGenerations(out string) ([]Generation, error) {
	var gens []Generation
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		id, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("parse generation line %q: %w", line, err)
		}
		gens = append(gens, Generation{ID: id, Current: f[len(f)-1] == "(current)"})
	}
	sort.Slice(gens, func(i, j int) bool { return gens[i].ID < gens[j].ID })
	return gens, nil
}

// DeleteGenerations removes the given generations of the profile (never the
// current one: nix-env refuses that). Their store paths stay until the
// garbage collector runs.
func (c *Client) DeleteGenerations(ctx context.Context, store, profile string, ids ...int) error {
	if len(ids) == 0 {
		return nil
	}
	args := append([]string{"-p", profile}, storeArgs(store)...)
	args = append(args, "--delete-generations")
	for _, id := range ids {
		args = append(args, strconv.Itoa(id))
	}
	if _, err := c.output(ctx, "nix-env", args...); err != nil {
		return fmt.Errorf("delete generations of %s: %w", profile, err)
	}
	return nil
}
