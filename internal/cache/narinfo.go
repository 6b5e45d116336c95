package cache

import (
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/nix-community/go-nix/pkg/narinfo"
	"github.com/nix-community/go-nix/pkg/nixhash"
)

// StoreDir is the store every cached path belongs to.
const StoreDir = "/nix/store"

// ErrBadNarInfo is wrapped by every error about a narinfo that does not parse
// or does not hold together.
var ErrBadNarInfo = errors.New("malformed narinfo")

// NarInfo describes one store path in a binary cache. Hashes are in Nix's
// "sha256:<nix32>" form; References and Deriver are full store paths.
type NarInfo struct {
	StorePath   string
	URL         string // relative to the cache root: "nar/<filehash>.nar.zst"
	Compression Compression
	FileHash    string
	FileSize    uint64
	NarHash     string
	NarSize     uint64
	References  []string
	Deriver     string
	CA          string
	Sigs        []string
}

// HashPart returns the 32-character hash part of a store path, which names
// its narinfo in a cache.
func HashPart(storePath string) string {
	base := path.Base(storePath)
	if len(base) < 32 {
		return base
	}
	return base[:32]
}

// NarInfoKey is the cache key of a store path's narinfo.
func NarInfoKey(storePath string) string { return HashPart(storePath) + ".narinfo" }

// Fingerprint is the string a narinfo's signatures sign:
// 1;<storePath>;<narHash>;<narSize>;<sorted references, comma-joined>.
func (n *NarInfo) Fingerprint() string {
	refs := append([]string(nil), n.References...)
	sort.Strings(refs)
	return "1;" + n.StorePath + ";" + n.NarHash + ";" +
		strconv.FormatUint(n.NarSize, 10) + ";" + strings.Join(refs, ",")
}

// Sign replaces the narinfo's signatures by key's.
func (n *NarInfo) Sign(key SecretKey) error {
	sig, err := key.Sign(n.Fingerprint())
	if err != nil {
		return err
	}
	n.Sigs = []string{sig}
	return nil
}

// Verify reports whether one of the narinfo's signatures is valid under one
// of keys.
func (n *NarInfo) Verify(keys ...PublicKey) bool {
	fp := n.Fingerprint()
	for _, k := range keys {
		for _, s := range n.Sigs {
			if k.Verify(fp, s) {
				return true
			}
		}
	}
	return false
}

// String renders the narinfo in the text form Nix reads.
func (n *NarInfo) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "StorePath: %s\n", n.StorePath)
	fmt.Fprintf(&b, "URL: %s\n", n.URL)
	fmt.Fprintf(&b, "Compression: %s\n", n.Compression)
	fmt.Fprintf(&b, "FileHash: %s\n", n.FileHash)
	fmt.Fprintf(&b, "FileSize: %d\n", n.FileSize)
	fmt.Fprintf(&b, "NarHash: %s\n", n.NarHash)
	fmt.Fprintf(&b, "NarSize: %d\n", n.NarSize)
	refs := make([]string, len(n.References))
	for i, r := range n.References {
		refs[i] = path.Base(r)
	}
	sort.Strings(refs)
	fmt.Fprintf(&b, "References: %s\n", strings.Join(refs, " "))
	if n.Deriver != "" {
		fmt.Fprintf(&b, "Deriver: %s\n", path.Base(n.Deriver))
	}
	for _, s := range n.Sigs {
		fmt.Fprintf(&b, "Sig: %s\n", s)
	}
	if n.CA != "" {
		fmt.Fprintf(&b, "CA: %s\n", n.CA)
	}
	return b.String()
}

// ParseNarInfo reads a narinfo and checks that it holds together: a valid
// store path, known compression, hashes and sizes present.
func ParseNarInfo(r io.Reader) (*NarInfo, error) {
	ni, err := narinfo.Parse(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadNarInfo, err)
	}
	if err := ni.Check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadNarInfo, err)
	}
	if ni.NarHash == nil || ni.NarSize == 0 {
		return nil, fmt.Errorf("%w: %s has no NarHash or NarSize", ErrBadNarInfo, ni.StorePath)
	}
	if ni.URL == "" {
		return nil, fmt.Errorf("%w: %s has no URL", ErrBadNarInfo, ni.StorePath)
	}
	comp, err := ParseCompression(ni.Compression)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadNarInfo, ni.StorePath, err)
	}
	n := &NarInfo{
		StorePath:   ni.StorePath,
		URL:         ni.URL,
		Compression: comp,
		FileSize:    ni.FileSize,
		NarHash:     ni.NarHash.Format(nixhash.NixBase32, true),
		NarSize:     ni.NarSize,
		CA:          ni.CA,
	}
	if ni.FileHash != nil {
		n.FileHash = ni.FileHash.Format(nixhash.NixBase32, true)
	}
	for _, ref := range ni.References {
		if ref != "" {
			n.References = append(n.References, StoreDir+"/"+ref)
		}
	}
	if ni.Deriver != "" {
		n.Deriver = StoreDir + "/" + ni.Deriver
	}
	for _, s := range ni.Signatures {
		n.Sigs = append(n.Sigs, s.String())
	}
	return n, nil
}
