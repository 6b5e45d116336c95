package nix

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nix-community/go-nix/pkg/nixbase32"
)

// StoreDir is the Nix store every path lives in.
const StoreDir = "/nix/store"

// ErrNotInStore is returned for a path that is not (inside) a valid store path.
var ErrNotInStore = errors.New("not in the Nix store")

// Client runs nix commands.
type Client struct {
	// Env is the environment of every command; nil means the process's.
	Env []string
	// Bin is the directory of the nix executables; empty means PATH.
	Bin string
	// StoreDB, if set and readable, is the local store's database, read
	// directly for path information (see DefaultStoreDB).
	StoreDB string
}

// PathInfo is what the local store knows about one valid store path.
type PathInfo struct {
	Path       string   // full store path
	NarHash    string   // "sha256:<nix32>"
	NarSize    uint64   // bytes of the NAR serialisation
	References []string // full store paths, sorted
	Deriver    string   // full .drv path, or empty
	CA         string   // content address, or empty
}

type pathInfoJSON struct {
	Path       string   `json:"path"`
	Valid      *bool    `json:"valid"`
	NarHash    string   `json:"narHash"`
	NarSize    uint64   `json:"narSize"`
	References []string `json:"references"`
	Deriver    string   `json:"deriver"`
	CA         string   `json:"ca"`
}

// StorePath resolves p (a store path, a path inside one, or a symlink such as
// ./result pointing into the store) to its top-level store path. It does not
// check that the path is valid; PathInfo does.
func StorePath(p string) (string, error) {
	if !strings.HasPrefix(p, StoreDir+"/") {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("%s: %w", p, err)
		}
		resolved, err := filepath.EvalSymlinks(abs)
		if err != nil {
			if os.IsNotExist(err) {
				return "", fmt.Errorf("%s: %w", p, ErrNotInStore)
			}
			return "", fmt.Errorf("%s: %w", p, err)
		}
		p = resolved
	}
	rest, ok := strings.CutPrefix(p, StoreDir+"/")
	if !ok || rest == "" {
		return "", fmt.Errorf("%s: %w", p, ErrNotInStore)
	}
	name, _, _ := strings.Cut(rest, "/")
	if err := ValidateStorePath(StoreDir + "/" + name); err != nil {
		return "", fmt.Errorf("%s: %w: %w", p, ErrNotInStore, err)
	}
	return StoreDir + "/" + name, nil
}

// PathInfo returns the closure of paths (each path and everything it
// references, transitively) with what the store records about each path.
// Paths must be store paths (see StorePath). A path the store does not hold
// gives an error wrapping ErrNotInStore.
func (c *Client) PathInfo(ctx context.Context, paths ...string) ([]PathInfo, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	if c.StoreDB != "" && storeDBReadable(c.StoreDB) {
		infos, err := pathInfoDB(ctx, c.StoreDB, paths)
		if err == nil || errors.Is(err, ErrNotInStore) || ctx.Err() != nil {
			return infos, err
		}
		// The database cannot be read here (a WAL database needs write
		// access to its -shm file): ask nix, which goes through the daemon.
	}
	args := append([]string{"path-info", "--json", "--recursive", "--"}, paths...)
	out, err := c.output(ctx, "nix", args...)
	var nerr *Error
	if errors.As(err, &nerr) && strings.Contains(nerr.Stderr, "is not valid") {
		return nil, fmt.Errorf("%w: %v", ErrNotInStore, err)
	}
	if err != nil {
		return nil, err
	}
	var raw []pathInfoJSON
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("parse nix path-info output: %w", err)
	}
	infos := make([]PathInfo, 0, len(raw))
	for _, r := range raw {
		if r.Valid != nil && !*r.Valid {
			return nil, fmt.Errorf("%s: %w", r.Path, ErrNotInStore)
		}
		h, err := SRIToNix32(r.NarHash)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.Path, err)
		}
		refs := append([]string(nil), r.References...)
		sort.Strings(refs)
		infos = append(infos, PathInfo{
			Path: r.Path, NarHash: h, NarSize: r.NarSize,
			References: refs, Deriver: r.Deriver, CA: r.CA,
		})
	}
	return infos, nil
}

// SRIToNix32 converts a hash as Nix 2.8 prints it in JSON ("sha256-<base64>")
// to the form narinfo files and signatures use ("sha256:<nix32>"). A hash
// already in that form is returned unchanged.
func SRIToNix32(h string) (string, error) {
	if strings.HasPrefix(h, "sha256:") {
		return h, nil
	}
	b64, ok := strings.CutPrefix(h, "sha256-")
	if !ok {
		return "", fmt.Errorf("unsupported hash %q", h)
	}
	digest, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(digest) != 32 {
		return "", fmt.Errorf("malformed hash %q", h)
	}
	return "sha256:" + nixbase32.EncodeToString(digest), nil
}

// Error is a failed nix command with what it printed on stderr.
type Error struct {
	Cmd    string
	Stderr string
	Err    error
}

func (e *Error) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if i := strings.LastIndex(msg, "error: "); i >= 0 {
		msg = msg[i+len("error: "):]
	}
	if msg == "" {
		return fmt.Sprintf("%s: %v", e.Cmd, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Cmd, msg)
}

func (e *Error) Unwrap() error { return e.Err }

func (c *Client) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	bin := name
	if c.Bin != "" {
		bin = filepath.Join(c.Bin, name)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = c.Env
	return cmd
}

func (c *Client) output(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := c.command(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", name, args[0], ctx.Err())
		}
		return nil, &Error{Cmd: name + " " + args[0], Stderr: stderr.String(), Err: err}
	}
	return out, nil
}

// BuildFile builds every derivation the Nix expression file evaluates to
// (nix-build) and returns their output paths, without creating result links.
func (c *Client) BuildFile(ctx context.Context, file string, extra ...string) ([]string, error) {
	args := append([]string{file, "--no-out-link"}, extra...)
	out, err := c.output(ctx, "nix-build", args...)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(out)), nil
}
