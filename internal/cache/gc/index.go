package gc

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	"github.com/nix-community/go-nix/pkg/nixbase32"

	"github.com/homelab-farm/farm/internal/cache"
)

// indexVersion changes whenever the index file's layout or meaning does:
// an index of another version is not read.
const indexVersion = 1

// info is what a collection needs of one narinfo: its store path's name
// (for Swept), the digest of its NAR's key, its deriver and its
// references.
type info struct {
	Name   string // the store path after "<hash>-"
	Nar    key20
	Drv    key20
	HasDrv bool
	Refs   []key20
}

// infoOf extracts the info of a narinfo read and checked.
func infoOf(ni *cache.NarInfo) *info {
	in := &info{Nar: digest(ni.URL)}
	if base := path.Base(ni.StorePath); len(base) > 33 {
		in.Name = base[33:]
	}
	in.Drv, in.HasDrv = pathKey(ni.Deriver)
	for _, ref := range ni.References {
		if k, ok := pathKey(ref); ok {
			in.Refs = append(in.Refs, k)
		}
	}
	return in
}

// storePath is the store path of the narinfo whose hash is k.
func (in *info) storePath(k key20) string {
	return cache.StoreDir + "/" + nixbase32.EncodeToString(k[:]) + "-" + in.Name
}

// objVersion names one version of a listed object.
type objVersion [16]byte

// version is a digest of what the listing says of an object: its size,
// its time and the store's tag. An object written again gets another
// version: a new time (with a directory's nanoseconds) or a new ETag
// (S3's digest of the content).
func version(o cache.Object) objVersion {
	sum := sha256.Sum256([]byte(strconv.FormatInt(o.Size, 10) + "/" + strconv.FormatInt(o.ModTime.UnixNano(), 10) + "/" + o.ETag))
	var v objVersion
	copy(v[:], sum[:])
	return v
}

// indexEntry is an indexed narinfo: the version listed when it was read,
// and what it holds.
type indexEntry struct {
	Key     key20
	Version objVersion
	Info    info

	fresh bool // the listing showed Version
	used  bool // read or reused by this collection
}

// indexHeader starts the index on disk (a gob stream): whose cache it
// describes, under which trusted keys its entries were checked, and how
// many entries follow, one gob value each.
type indexHeader struct {
	Version int
	Cache   string
	Trusted []string
	Entries int
}

// index is what an earlier collection read of the cache's narinfos: a
// narinfo whose listed version is the one indexed need not be read again.
// Every entry was read from the cache and its signature checked against
// the same trusted keys; a version that differs in anything is read anew.
type index struct {
	entries map[key20]*indexEntry
}

// trustedNames are the trusted keys, sorted, as the index records them.
func (c *Collector) trustedNames() []string {
	names := make([]string, 0, len(c.Trusted))
	for _, k := range c.Trusted {
		names = append(names, k.String())
	}
	slices.Sort(names)
	return names
}

// loadIndex reads c.Index. A missing file, or one made for another cache,
// other keys or another layout, is an empty index: the collection reads
// every narinfo, as without one.
func (c *Collector) loadIndex() *index {
	idx := &index{entries: map[key20]*indexEntry{}}
	if c.Index == "" {
		return idx
	}
	f, err := os.Open(c.Index)
	if errors.Is(err, fs.ErrNotExist) {
		return idx
	}
	if err != nil {
		c.log().Warn("narinfo index unreadable: reading every narinfo", "file", c.Index, "err", err)
		return idx
	}
	defer f.Close()
	dec := gob.NewDecoder(bufio.NewReader(f))
	var h indexHeader
	if err := dec.Decode(&h); err != nil {
		c.log().Warn("narinfo index unreadable: reading every narinfo", "file", c.Index, "err", err)
		return idx
	}
	if h.Version != indexVersion || h.Cache != c.Backend.String() || !slices.Equal(h.Trusted, c.trustedNames()) {
		c.log().Info("narinfo index made for another cache or other keys: reading every narinfo", "file", c.Index)
		return idx
	}
	for range h.Entries {
		e := &indexEntry{}
		if err := dec.Decode(e); err != nil {
			c.log().Warn("narinfo index unreadable: reading every narinfo", "file", c.Index, "err", err)
			return &index{entries: map[key20]*indexEntry{}}
		}
		idx.entries[e.Key] = e
	}
	return idx
}

// saveIndex replaces c.Index with entries, atomically: a collection killed
// while it writes leaves the old index or the new one.
func (c *Collector) saveIndex(entries []*indexEntry) error {
	if c.Index == "" {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.Index), filepath.Base(c.Index)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write narinfo index: %w", err)
	}
	defer os.Remove(tmp.Name()) // once renamed, there is nothing to remove
	w := bufio.NewWriter(tmp)
	enc := gob.NewEncoder(w)
	err = enc.Encode(&indexHeader{Version: indexVersion, Cache: c.Backend.String(), Trusted: c.trustedNames(), Entries: len(entries)})
	for _, e := range entries {
		if err != nil {
			break
		}
		err = enc.Encode(e)
	}
	if err != nil {
		tmp.Close()
		return fmt.Errorf("write narinfo index: %w", err)
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("write narinfo index: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write narinfo index: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write narinfo index: %w", err)
	}
	if err := os.Rename(tmp.Name(), c.Index); err != nil {
		return fmt.Errorf("write narinfo index: %w", err)
	}
	return nil
}

// reads is what one collection reads of the narinfos: from the cache, or
// from the index when the listing shows the version indexed. The index's
// entries become the new index: an entry the listing confirms is marked
// fresh, one read anew replaces it, and those used (read or reused) are
// saved. Safe for concurrent use.
type reads struct {
	c   *Collector
	idx *index

	mu       sync.Mutex
	versions map[key20]objVersion // the listing's version of the narinfos not fresh in the index
	indexed  int                  // narinfos known from the index
}

func newReads(c *Collector) *reads {
	rd := &reads{c: c, idx: c.loadIndex()}
	if c.Index != "" {
		rd.versions = map[key20]objVersion{}
	}
	return rd
}

// listed records the listing's version of narinfo k: the index's entry is
// fresh if it names that version.
func (rd *reads) listed(k key20, o cache.Object) {
	if rd.versions == nil {
		return
	}
	v := version(o)
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if e := rd.idx.entries[k]; e != nil && e.Version == v {
		e.fresh = true
		return
	}
	rd.versions[k] = v
}

// get returns the info of narinfo k. It comes from the index if the
// listing showed k at the version indexed; else k is read from the cache,
// and indexed with the version listed if the listing showed k (it lists
// before reads begin, so the read sees that version or a later one, whose
// listing will differ next time: an entry never holds less than the
// version it names). A narinfo written after the listing is not indexed.
func (rd *reads) get(ctx context.Context, k key20) (*info, error) {
	rd.mu.Lock()
	if e := rd.idx.entries[k]; e != nil && e.fresh {
		e.used = true
		rd.indexed++
		rd.mu.Unlock()
		return &e.Info, nil
	}
	v, listed := rd.versions[k]
	rd.mu.Unlock()
	ni, err := rd.c.readNarInfo(ctx, k)
	if err != nil {
		return nil, err
	}
	in := infoOf(ni)
	if listed {
		rd.mu.Lock()
		rd.idx.entries[k] = &indexEntry{Key: k, Version: v, Info: *in, fresh: true, used: true}
		rd.mu.Unlock()
	}
	return in, nil
}

// kept are the entries of the new index: every narinfo read or reused,
// less the garbage swept (none in a dry run).
func (rd *reads) kept(g *garbage, dryRun bool) []*indexEntry {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	out := make([]*indexEntry, 0, len(rd.idx.entries))
	for k, e := range rd.idx.entries {
		if !e.used {
			continue
		}
		if _, swept := g.index[k]; swept && !dryRun {
			continue
		}
		out = append(out, e)
	}
	return out
}
