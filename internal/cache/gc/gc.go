package gc

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/nix-community/go-nix/pkg/nixbase32"
	"golang.org/x/sync/errgroup"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/parallel"
)

// DefaultStaleAfter is how old a collector's heartbeat may get before
// pushers and other collectors take it for dead.
const DefaultStaleAfter = 2 * time.Minute

// Errors a caller may branch on.
var (
	// ErrNotFarmCache is returned, before anything is deleted, when the
	// cache has no nix-cache-info or holds a narinfo that no trusted key
	// signed.
	ErrNotFarmCache = errors.New("not the farm's cache")
	// ErrRunning is returned when another collection is running.
	ErrRunning = errors.New("another collection is running")
	// ErrLeaseLost is returned when the collector could not refresh its
	// heartbeat in time and stopped deleting.
	ErrLeaseLost = errors.New("collection lost its lease")
)

// Phases reported through Progress.
const (
	PhaseMark     = "mark"     // narinfos read while marking
	PhaseScan     = "scan"     // garbage narinfos read before the sweep
	PhaseNarInfos = "narinfos" // garbage narinfos deleted
	PhaseNars     = "nars"     // NARs listed (and the garbage among them deleted)
	PhaseLogs     = "logs"     // logs listed
)

// Progress reports how far a phase got. Total is 0 when unknown.
type Progress struct {
	Phase       string
	Done, Total int
}

// Collector removes what no root reaches from a binary cache.
type Collector struct {
	Backend cache.Backend
	// Trusted are the farm's public keys: every narinfo read must carry a
	// signature by one of them, or the collection deletes nothing.
	Trusted []cache.PublicKey
	// Grace protects young objects: nothing written less than Grace ago is
	// deleted, and every narinfo that young is a root.
	Grace time.Duration
	// StaleAfter is how old a heartbeat may get; 0 means DefaultStaleAfter.
	StaleAfter time.Duration
	// DryRun computes what would go, and deletes and writes nothing.
	DryRun bool
	// Jobs is how many narinfos are read at once; 0 means 16.
	Jobs int
	// Index, if set, is a file where the collector keeps what it read of
	// each narinfo, with the version the listing showed: the next
	// collection reads again only the narinfos whose listed version
	// changed (or that are new), not every one. It is local state, kept
	// by one collector (a builder's state directory); a dry run writes it
	// too. A missing or unusable index only makes a collection read more.
	Index string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Progress, if set, is called from one goroutine as phases advance.
	Progress func(Progress)
	// Swept, if set, is called with the store path of every narinfo that
	// goes (or would go, in a dry run), from one goroutine.
	Swept func(storePath string)
	Log   *slog.Logger
}

// Counts is a number of objects and their bytes as stored.
type Counts struct {
	Objects int
	Bytes   int64
}

func (c *Counts) add(size int64) { c.Objects++; c.Bytes += size }

// Result is what a collection found and did.
type Result struct {
	DryRun       bool
	Roots        int // roots given
	MissingRoots int // roots with no narinfo in the cache
	Young        int // narinfos younger than the grace period (roots too)
	// Dangling counts references to paths without a narinfo: the cache was
	// inconsistent before the collection.
	Dangling int
	// Indexed counts the narinfos known from the index, not read again.
	Indexed                int
	KeptNarInfos, NarInfos Counts // NarInfos: the narinfos that went
	KeptNars, Nars         Counts
	Logs                   Counts // logs that went
	Started, Finished      time.Time
}

// Gone is everything that went.
func (r *Result) Gone() Counts {
	return Counts{r.NarInfos.Objects + r.Nars.Objects + r.Logs.Objects, r.NarInfos.Bytes + r.Nars.Bytes + r.Logs.Bytes}
}

// Kept is every narinfo and NAR that stays.
func (r *Result) Kept() Counts {
	return Counts{r.KeptNarInfos.Objects + r.KeptNars.Objects, r.KeptNarInfos.Bytes + r.KeptNars.Bytes}
}

const (
	// deleteBatch is the most keys that go in one DeleteMany (one S3
	// request), and minBatch the fewest a set of keys is split into to run
	// batches at once.
	deleteBatch = 1000
	minBatch    = 100
	// deleteJobs is how many DeleteMany run at once. Batches that may go in
	// any order (one wave of narinfos, the NARs, the logs) run together: a
	// server spreads them over its cores, where one batch uses one.
	deleteJobs = 4
)

func (c *Collector) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Collector) jobs() int {
	if c.Jobs > 0 {
		return c.Jobs
	}
	return 16
}

func (c *Collector) staleAfter() time.Duration {
	if c.StaleAfter > 0 {
		return c.StaleAfter
	}
	return DefaultStaleAfter
}

func (c *Collector) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (c *Collector) progress(phase string, done, total int) {
	if c.Progress != nil {
		c.Progress(Progress{phase, done, total})
	}
}

// Validate checks the settings.
func (c *Collector) Validate() error {
	var errs []error
	if c.Backend == nil {
		errs = append(errs, errors.New("no cache"))
	}
	if len(c.Trusted) == 0 {
		errs = append(errs, errors.New("no trusted key: the farm's public key tells its cache"))
	}
	if c.Grace < 0 {
		errs = append(errs, fmt.Errorf("grace period %s: want zero or more", c.Grace))
	}
	if c.StaleAfter < 0 {
		errs = append(errs, fmt.Errorf("stale-after %s: want zero or more", c.StaleAfter))
	}
	return errors.Join(errs...)
}

// Collect keeps what roots (store paths) and young narinfos reach and
// deletes the rest (see the package documentation for the order and the
// protocol with pushers). It deletes nothing when it returns an error
// before the sweep: bad roots, a cache that is not the farm's, another
// collection running, an unreadable narinfo.
func (c *Collector) Collect(ctx context.Context, roots []string) (*Result, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("collect: %w", err)
	}
	rootKeys := make(map[key20]struct{}, len(roots))
	for _, r := range roots {
		k, ok := pathKey(r)
		if !ok || !strings.HasPrefix(r, cache.StoreDir+"/") {
			return nil, fmt.Errorf("collect: root %q is not a store path", r)
		}
		rootKeys[k] = struct{}{}
	}
	if err := c.checkCacheInfo(ctx); err != nil {
		return nil, err
	}
	res := &Result{DryRun: c.DryRun, Roots: len(rootKeys), Started: c.now()}
	var l *lease
	if !c.DryRun {
		var err error
		if l, err = startLease(ctx, c, res.Started); err != nil {
			return nil, err
		}
	}
	err := c.collect(ctx, rootKeys, res, l)
	if l != nil {
		if endErr := l.end(ctx, err); err == nil {
			err = endErr
		}
	}
	res.Finished = c.now()
	if err != nil {
		return res, fmt.Errorf("collect %s: %w", c.Backend, err)
	}
	return res, nil
}

func (c *Collector) checkCacheInfo(ctx context.Context) error {
	rc, err := c.Backend.Get(ctx, "nix-cache-info")
	if errors.Is(err, cache.ErrNotFound) {
		return fmt.Errorf("collect %s: no nix-cache-info: %w", c.Backend, ErrNotFarmCache)
	}
	if err != nil {
		return fmt.Errorf("collect %s: %w", c.Backend, err)
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return fmt.Errorf("collect %s: read nix-cache-info: %w", c.Backend, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "StoreDir:"); ok && strings.TrimSpace(v) != cache.StoreDir {
			return fmt.Errorf("collect %s: store %s, want %s: %w", c.Backend, strings.TrimSpace(v), cache.StoreDir, ErrNotFarmCache)
		}
	}
	return nil
}

func (c *Collector) collect(ctx context.Context, rootKeys map[key20]struct{}, res *Result, l *lease) error {
	cutoff := res.Started.Add(-c.Grace)
	rd := newReads(c)
	m := &marker{c: c, res: res, roots: rootKeys, reads: rd,
		live: make(map[key20]struct{}), nars: make(map[key20]struct{}), drvs: make(map[key20]struct{})}
	for k := range rootKeys {
		m.add(k)
	}
	// The narinfos are listed while the roots are marked through (neither
	// needs the other; the listing is one request at a time, which leaves
	// the server room for the reads): a young narinfo is a root as well and
	// is marked through next; an old one is garbage unless marking reaches
	// it. With an index, the listing goes first: an indexed narinfo is
	// reused only if the listing shows the version indexed, and a narinfo
	// read is indexed with the version listed before the read.
	type listed struct {
		k    key20
		size int64
	}
	var young, old []listed
	list := func(ctx context.Context) error {
		return c.Backend.List(ctx, "", func(o cache.Object) error {
			k, ok := narInfoKey(o.Key)
			if !ok {
				return nil
			}
			m.reads.listed(k, o)
			if o.ModTime.After(cutoff) {
				young = append(young, listed{k, o.Size})
			} else {
				old = append(old, listed{k, o.Size})
			}
			return nil
		})
	}
	if c.Index != "" {
		if err := list(ctx); err != nil {
			return err
		}
		if err := m.walk(ctx); err != nil {
			return err
		}
	} else {
		eg, ectx := errgroup.WithContext(ctx)
		eg.Go(func() error { return list(ectx) })
		eg.Go(func() error { return m.walk(ectx) })
		if err := eg.Wait(); err != nil {
			return err
		}
	}
	for _, y := range young {
		res.Young++
		res.KeptNarInfos.add(y.size)
		m.add(y.k)
	}
	young = nil
	if err := m.walk(ctx); err != nil {
		return err
	}
	g := &garbage{index: make(map[key20]int32)}
	for _, o := range old {
		if _, live := m.live[o.k]; live {
			res.KeptNarInfos.add(o.size)
			continue
		}
		g.index[o.k] = int32(len(g.keys))
		g.keys = append(g.keys, o.k)
		g.sizes = append(g.sizes, o.size)
	}
	old = nil
	if err := c.scan(ctx, g, rd); err != nil {
		return err
	}
	res.Indexed = rd.indexed
	// From here on, objects are deleted (unless this is a dry run).
	if err := c.sweepNarInfos(ctx, g, res, l); err != nil {
		return err
	}
	// The index keeps what stays; once the narinfos are swept it is true
	// of the cache whatever happens next.
	if err := c.saveIndex(rd.kept(g, c.DryRun)); err != nil {
		c.log().Warn("narinfo index not saved: the next collection reads every narinfo", "err", err)
	}
	if err := c.sweepFiles(ctx, "nar/", PhaseNars, res, l, func(o cache.Object) (gone bool, kept *Counts, counts *Counts) {
		if _, live := m.nars[digest(o.Key)]; live || o.ModTime.After(cutoff) {
			return false, &res.KeptNars, nil
		}
		return true, nil, &res.Nars
	}); err != nil {
		return err
	}
	return c.sweepFiles(ctx, "log/", PhaseLogs, res, l, func(o cache.Object) (bool, *Counts, *Counts) {
		k, ok := pathKey(path.Base(o.Key))
		if !ok || o.ModTime.After(cutoff) {
			return false, nil, nil
		}
		if _, live := m.drvs[k]; live {
			return false, nil, nil
		}
		return true, nil, &res.Logs
	})
}

// marker walks References from its roots.
type marker struct {
	c        *Collector
	res      *Result
	roots    map[key20]struct{}
	reads    *reads
	live     map[key20]struct{} // paths reached
	nars     map[key20]struct{} // digests of the NAR keys of live narinfos
	drvs     map[key20]struct{} // derivers of live narinfos
	frontier []key20
	read     int
}

func (m *marker) add(k key20) {
	if _, ok := m.live[k]; !ok {
		m.live[k] = struct{}{}
		m.frontier = append(m.frontier, k)
	}
}

// walk reads the narinfos of the frontier, a batch at a time, until every
// path reached has been read.
func (m *marker) walk(ctx context.Context) error {
	batchSize := m.c.jobs() * 64
	for len(m.frontier) > 0 {
		n := min(batchSize, len(m.frontier))
		batch := append([]key20(nil), m.frontier[len(m.frontier)-n:]...)
		m.frontier = m.frontier[:len(m.frontier)-n]
		infos := make([]*info, n)
		err := parallel.ForEach(ctx, n, m.c.jobs(), func(i int) error {
			in, err := m.reads.get(ctx, batch[i])
			if errors.Is(err, cache.ErrNotFound) {
				return nil
			}
			infos[i] = in
			return err
		})
		if err != nil {
			return err
		}
		for i, ni := range infos {
			if ni == nil {
				if _, root := m.roots[batch[i]]; root {
					m.res.MissingRoots++
				} else {
					m.res.Dangling++
					m.c.log().Warn("a narinfo references a path the cache lacks", "path", nixbase32.EncodeToString(batch[i][:]))
				}
				continue
			}
			m.nars[ni.Nar] = struct{}{}
			if ni.HasDrv {
				m.drvs[ni.Drv] = struct{}{}
			}
			for _, k := range ni.Refs {
				m.add(k)
			}
		}
		m.read += n
		m.c.progress(PhaseMark, m.read, 0)
	}
	return nil
}

// readNarInfo reads and checks the narinfo of the path whose hash is k. It
// wraps cache.ErrNotFound when there is none, and ErrNotFarmCache when no
// trusted key signed it.
func (c *Collector) readNarInfo(ctx context.Context, k key20) (*cache.NarInfo, error) {
	key := nixbase32.EncodeToString(k[:]) + ".narinfo"
	rc, err := c.Backend.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	ni, err := parseNarInfo(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w (run cache verify)", key, err)
	}
	if cache.NarInfoKey(ni.StorePath) != key {
		return nil, fmt.Errorf("read %s: it describes %s (run cache verify)", key, ni.StorePath)
	}
	if !ni.Verify(c.Trusted...) {
		return nil, fmt.Errorf("%s is not signed by a trusted key: %w", key, ErrNotFarmCache)
	}
	return ni, nil
}

// garbage is the narinfos that go, indexed, with the references among them.
type garbage struct {
	keys  []key20
	sizes []int64
	index map[key20]int32
	paths []string  // store paths, for Swept
	refs  [][]int32 // references to other garbage narinfos
	gone  []bool    // vanished before the scan read them
}

// scan reads every garbage narinfo (checking its signature) for its
// references.
func (c *Collector) scan(ctx context.Context, g *garbage, rd *reads) error {
	n := len(g.keys)
	g.refs = make([][]int32, n)
	g.gone = make([]bool, n)
	if c.Swept != nil {
		g.paths = make([]string, n)
	}
	batch := c.jobs() * 64
	for start := 0; start < n; start += batch {
		end := min(start+batch, n)
		err := parallel.ForEach(ctx, end-start, c.jobs(), func(j int) error {
			i := start + j
			ni, err := rd.get(ctx, g.keys[i])
			if errors.Is(err, cache.ErrNotFound) {
				g.gone[i] = true // another collector took it
				return nil
			}
			if err != nil {
				return err
			}
			var refs []int32
			for _, k := range ni.Refs {
				if k != g.keys[i] {
					if r, ok := g.index[k]; ok {
						refs = append(refs, r)
					}
				}
			}
			g.refs[i] = refs
			if g.paths != nil {
				g.paths[i] = ni.storePath(g.keys[i])
			}
			return nil
		})
		if err != nil {
			return err
		}
		c.progress(PhaseScan, end, n)
	}
	return nil
}

// sweepNarInfos deletes the garbage narinfos in waves, each narinfo only
// after every garbage narinfo that references it: whenever a delete stops,
// the narinfos left reference only narinfos that are there.
func (c *Collector) sweepNarInfos(ctx context.Context, g *garbage, res *Result, l *lease) error {
	n := len(g.keys)
	indeg := make([]int32, n)
	for _, refs := range g.refs {
		for _, r := range refs {
			indeg[r]++
		}
	}
	var wave []int32
	for i := range n {
		if indeg[i] == 0 {
			wave = append(wave, int32(i))
		}
	}
	done := 0
	for len(wave) > 0 {
		present := make([]int32, 0, len(wave))
		for _, i := range wave {
			if g.gone[i] {
				continue
			}
			present = append(present, i)
			res.NarInfos.add(g.sizes[i])
			if c.Swept != nil {
				c.Swept(g.paths[i])
			}
		}
		// Nothing in a wave references another of the wave: its batches
		// may go at once, in any order.
		err := c.deleteAll(ctx, l, len(present), func(j int) string {
			return nixbase32.EncodeToString(g.keys[present[j]][:]) + ".narinfo"
		})
		if err != nil {
			return err
		}
		done += len(wave)
		c.progress(PhaseNarInfos, done, n)
		var next []int32
		for _, i := range wave {
			for _, r := range g.refs[i] {
				if indeg[r]--; indeg[r] == 0 {
					next = append(next, r)
				}
			}
		}
		wave = next
	}
	if done != n {
		return fmt.Errorf("references among garbage narinfos form a cycle (%d of %d swept)", done, n)
	}
	return nil
}

// sweepFiles lists dir and deletes what decide says goes, in batches of
// deleteBatch, up to deleteJobs of them while the listing goes on, counting
// what stays in kept and what goes in gone.
func (c *Collector) sweepFiles(ctx context.Context, dir, phase string, res *Result, l *lease,
	decide func(cache.Object) (gone bool, kept, counts *Counts)) error {
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(deleteJobs)
	var batch []string
	listed := 0
	flush := func() {
		if len(batch) == 0 {
			return
		}
		keys := batch
		batch = nil
		eg.Go(func() error { return c.delete(ectx, l, keys) }) // waits for a free slot
		c.progress(phase, listed, 0)
	}
	err := c.Backend.List(ectx, dir, func(o cache.Object) error {
		listed++
		gone, kept, counts := decide(o)
		if kept != nil {
			kept.add(o.Size)
		}
		if !gone {
			return nil
		}
		counts.add(o.Size)
		if batch = append(batch, o.Key); len(batch) == deleteBatch {
			flush()
		}
		return ectx.Err() // a batch failed: stop listing
	})
	if err == nil {
		flush()
	}
	if werr := eg.Wait(); werr != nil {
		return werr // a failed batch also stops the listing
	}
	if err != nil {
		return err
	}
	c.progress(phase, listed, 0)
	return nil
}

// deleteAll deletes the n keys key(0..n-1), which may go in any order, in
// batches of at least minBatch and at most deleteBatch keys, up to
// deleteJobs batches at once.
func (c *Collector) deleteAll(ctx context.Context, l *lease, n int, key func(int) string) error {
	size := min(deleteBatch, max(minBatch, (n+deleteJobs-1)/deleteJobs))
	return parallel.ForEach(ctx, (n+size-1)/size, deleteJobs, func(b int) error {
		keys := make([]string, 0, size)
		for i := b * size; i < min((b+1)*size, n); i++ {
			keys = append(keys, key(i))
		}
		return c.delete(ctx, l, keys)
	})
}

// delete removes keys unless this is a dry run, and only while the lease
// holds: a batch still running when pushers could take the collection for
// dead is cancelled.
func (c *Collector) delete(ctx context.Context, l *lease, keys []string) error {
	if c.DryRun || len(keys) == 0 {
		return nil
	}
	left, err := l.check()
	if err != nil {
		return err
	}
	l.deleting()
	ctx, cancel := context.WithTimeout(ctx, left) // no delete outlives the lease
	defer cancel()
	return cache.DeleteMany(ctx, c.Backend, keys)
}

// key20 is a store path's hash part (32 nix32 characters, 20 bytes) or a
// digest of a key.
type key20 [20]byte

// pathKey returns the hash part of a store path or of its base name.
func pathKey(p string) (key20, bool) {
	var k key20
	base := path.Base(p)
	if len(base) < 33 || base[32] != '-' {
		return k, false
	}
	b, err := nixbase32.DecodeString(base[:32])
	if err != nil || len(b) != len(k) {
		return k, false
	}
	copy(k[:], b)
	return k, true
}

// narInfoKey returns the hash of a narinfo's key ("<hash>.narinfo").
func narInfoKey(key string) (key20, bool) {
	h, ok := strings.CutSuffix(key, ".narinfo")
	if !ok || len(h) != 32 || strings.Contains(h, "/") {
		return key20{}, false
	}
	return pathKey(h + "-x")
}

// digest is a compact name for any key: the first 20 bytes of its SHA-256.
func digest(s string) key20 {
	sum := sha256.Sum256([]byte(s))
	var k key20
	copy(k[:], sum[:])
	return k
}
