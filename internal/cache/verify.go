package cache

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/homelab-farm/farm/internal/parallel"
)

// Problem is one inconsistency Verify found.
type Problem struct {
	Key    string
	Reason string
}

func (p Problem) String() string { return p.Key + ": " + p.Reason }

// Report is what Verify found.
type Report struct {
	NarInfos  int
	NarBytes  int64 // uncompressed, as the narinfos state
	FileBytes int64 // compressed, as stored
	Problems  []Problem
}

// OK reports whether the cache is consistent.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// VerifyOptions tunes Verify.
type VerifyOptions struct {
	// Quick checks NAR sizes only, without downloading and hashing them.
	Quick bool
	// Jobs is how many narinfos are checked at once; 0 means 8.
	Jobs int
}

// Verify walks the whole cache: every narinfo must parse, carry a valid
// signature by one of trusted, point at a NAR of the stated size (and, unless
// Quick, of the stated FileHash, NarHash and NarSize once decompressed), and
// reference only paths whose narinfos exist. The error is for failures to
// read the cache; inconsistencies go into the report.
func Verify(ctx context.Context, b Backend, trusted []PublicKey, opts VerifyOptions) (*Report, error) {
	rep := &Report{}
	if _, err := b.Stat(ctx, "nix-cache-info"); err != nil {
		if !errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("read nix-cache-info: %w", err)
		}
		var any bool
		_ = b.List(ctx, "", func(Object) error { any = true; return io.EOF })
		if any {
			rep.Problems = append(rep.Problems, Problem{"nix-cache-info", "missing"})
		}
	}
	var keys []string
	err := b.List(ctx, "", func(o Object) error {
		if strings.HasSuffix(o.Key, ".narinfo") {
			keys = append(keys, o.Key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", b, err)
	}
	sort.Strings(keys)
	have := make(map[string]bool, len(keys))
	for _, k := range keys {
		have[k] = true
	}
	jobs := opts.Jobs
	if jobs <= 0 {
		jobs = 8
	}
	var mu sync.Mutex
	add := func(key, format string, args ...any) {
		mu.Lock()
		rep.Problems = append(rep.Problems, Problem{key, fmt.Sprintf(format, args...)})
		mu.Unlock()
	}
	err = parallel.ForEach(ctx, len(keys), jobs, func(i int) error {
		key := keys[i]
		ni, err := readNarInfo(ctx, b, key)
		if err != nil {
			if errors.Is(err, ErrBadNarInfo) || errors.Is(err, ErrNotFound) {
				add(key, "%v", err)
				return nil
			}
			return err
		}
		if NarInfoKey(ni.StorePath) != key {
			add(key, "describes %s, whose narinfo is %s", ni.StorePath, NarInfoKey(ni.StorePath))
		}
		if !ni.Verify(trusted...) {
			add(key, "no valid signature by a trusted key")
		}
		for _, ref := range ni.References {
			if ref != ni.StorePath && !have[NarInfoKey(ref)] {
				add(key, "reference %s is not in the cache", ref)
			}
		}
		size, err := b.Stat(ctx, ni.URL)
		switch {
		case errors.Is(err, ErrNotFound):
			add(key, "NAR %s is missing", ni.URL)
			return nil
		case err != nil:
			return fmt.Errorf("stat %s: %w", ni.URL, err)
		case ni.FileSize != 0 && uint64(size) != ni.FileSize:
			add(key, "NAR %s has %d bytes, narinfo says %d", ni.URL, size, ni.FileSize)
			return nil
		}
		mu.Lock()
		rep.NarInfos++
		rep.NarBytes += int64(ni.NarSize)
		rep.FileBytes += size
		mu.Unlock()
		if opts.Quick {
			return nil
		}
		if reason, err := checkNar(ctx, b, ni); err != nil {
			return err
		} else if reason != "" {
			add(key, "%s", reason)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sort.Slice(rep.Problems, func(i, j int) bool { return rep.Problems[i].Key < rep.Problems[j].Key })
	return rep, nil
}

// ReadNarInfo fetches and parses the narinfo of storePath.
func ReadNarInfo(ctx context.Context, b Backend, storePath string) (*NarInfo, error) {
	return readNarInfo(ctx, b, NarInfoKey(storePath))
}

func readNarInfo(ctx context.Context, b Backend, key string) (*NarInfo, error) {
	rc, err := b.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return ParseNarInfo(io.LimitReader(rc, 4<<20))
}

// checkNar downloads a NAR and returns why it does not match its narinfo,
// or "" when it does.
func checkNar(ctx context.Context, b Backend, ni *NarInfo) (string, error) {
	rc, err := b.Get(ctx, ni.URL)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", ni.URL, err)
	}
	defer rc.Close()
	fileHash := sha256.New()
	dec, err := ni.Compression.decompressor(io.TeeReader(rc, fileHash))
	if err != nil {
		return fmt.Sprintf("NAR %s does not decompress: %v", ni.URL, err), nil
	}
	defer dec.Close()
	narHash := sha256.New()
	n, err := io.Copy(narHash, dec)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return fmt.Sprintf("NAR %s does not decompress: %v", ni.URL, err), nil
	}
	if _, err := io.Copy(fileHash, rc); err != nil {
		return "", fmt.Errorf("read %s: %w", ni.URL, err)
	}
	if ni.FileHash != "" && nixHash(fileHash) != ni.FileHash {
		return fmt.Sprintf("NAR %s hashes to %s, narinfo says FileHash %s", ni.URL, nixHash(fileHash), ni.FileHash), nil
	}
	if got := nixHash(narHash); got != ni.NarHash || uint64(n) != ni.NarSize {
		return fmt.Sprintf("NAR %s unpacks to %s (%d bytes), narinfo says %s (%d bytes)", ni.URL, got, n, ni.NarHash, ni.NarSize), nil
	}
	return "", nil
}
