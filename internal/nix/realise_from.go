package nix

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// SubstituteOptions say where RealiseFrom takes a closure from and what it
// trusts.
type SubstituteOptions struct {
	// From is the binary cache's URL (http://, https://, file://).
	From string
	// TrustedKeys are the only public keys ("name:base64") whose signatures
	// make a path acceptable; an empty list is refused, since Nix would then
	// fall back to its configured keys.
	TrustedKeys []string
	// Store is the store to realise into ("local?root=/tmp/x" for a chroot
	// store in tests); empty means the default store.
	Store string
}

// RealiseFrom makes path and its closure valid in the store, substituting
// what is missing from opts.From. Nix checks every narinfo against
// opts.TrustedKeys only, and asks again for paths it recently found missing
// (narinfo-cache-negative-ttl 0): a freshly pushed closure is otherwise
// invisible for up to an hour. Each call gets a private, empty XDG cache
// directory, so no narinfo lookup is remembered between calls.
func (c *Client) RealiseFrom(ctx context.Context, path string, opts SubstituteOptions) error {
	if opts.From == "" {
		return fmt.Errorf("realise %s: no cache URL", path)
	}
	if len(opts.TrustedKeys) == 0 {
		return fmt.Errorf("realise %s: no trusted cache key", path)
	}
	if _, err := StorePath(path); err != nil || !strings.HasPrefix(path, StoreDir+"/") {
		return fmt.Errorf("realise %s: %w", path, ErrNotInStore)
	}
	xdg, err := os.MkdirTemp("", "farm-nix-cache-")
	if err != nil {
		return fmt.Errorf("realise %s: %w", path, err)
	}
	defer os.RemoveAll(xdg)

	args := []string{"copy", "--from", opts.From}
	if opts.Store != "" {
		args = append(args, "--to", opts.Store)
	}
	args = append(args,
		"--option", "trusted-public-keys", strings.Join(opts.TrustedKeys, " "),
		"--option", "narinfo-cache-negative-ttl", "0",
		"--", path)
	cc := *c
	cc.Env = append(c.environ(), "XDG_CACHE_HOME="+xdg)
	if _, err := cc.output(ctx, "nix", args...); err != nil {
		return fmt.Errorf("realise %s from %s: %w", path, opts.From, err)
	}
	return nil
}

// environ is the environment commands run with.
func (c *Client) environ() []string {
	if c.Env != nil {
		return append([]string(nil), c.Env...)
	}
	return os.Environ()
}

// StoreRoot returns the directory a store URL keeps its /nix/store under:
// "/tmp/x" for "local?root=/tmp/x", "" for the default store (paths live
// at their own names).
func StoreRoot(store string) string {
	_, query, ok := strings.Cut(store, "?")
	if !ok {
		return ""
	}
	for _, kv := range strings.Split(query, "&") {
		if v, ok := strings.CutPrefix(kv, "root="); ok {
			return v
		}
	}
	return ""
}
