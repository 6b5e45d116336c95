package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	gonar "github.com/nix-community/go-nix/pkg/nar"
	"github.com/nix-community/go-nix/pkg/nixbase32"

	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/parallel"
)

// Store is the local Nix store a push reads path information from.
type Store interface {
	// PathInfo returns the closure of paths with what the store records of
	// each path. It fails for a path the store does not hold.
	PathInfo(ctx context.Context, paths ...string) ([]nix.PathInfo, error)
}

// CacheInfo is the nix-cache-info a push writes when the cache has none.
const CacheInfo = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"

const (
	// listThreshold is the closure size from which one listing of the cache
	// is cheaper than one existence check per path.
	listThreshold = 64
	// smallNar is the NAR size under which a NAR is compressed in memory and
	// uploaded with its final name in one request.
	smallNar = 4 << 20
)

// Pusher uploads store paths and their closures to a binary cache.
type Pusher struct {
	Backend     Backend
	Key         SecretKey
	Store       Store
	Compression Compression // "" means zstd
	// StoreRoot is prefixed to store paths when reading their contents (a
	// chroot store such as local?root=/tmp/x); empty for the real /nix/store.
	StoreRoot string
	// Jobs is how many paths are uploaded at once; 0 means 16. Of these, at
	// most two large NARs stream at once (each compresses on every CPU), so
	// memory stays bounded whatever Jobs is.
	Jobs int
	// Retry is how failed uploads are retried; the zero value means the
	// default (about two minutes of exponential backoff).
	Retry Retry
	// Progress, if set, is called after each path is done. It may be called
	// from several goroutines at once.
	Progress func(Event)
	Log      *slog.Logger

	streamed atomic.Int64
}

// Streamed is how many NAR bytes this Pusher has read from the store so far,
// counted as they stream (for progress reports while a large path uploads).
func (p *Pusher) Streamed() int64 { return p.streamed.Load() }

type streamCounter struct{ n *atomic.Int64 }

func (s streamCounter) Write(p []byte) (int, error) {
	s.n.Add(int64(len(p)))
	return len(p), nil
}

// Event reports one step of a push.
type Event struct {
	Path      string
	Skipped   bool  // already in the cache
	NarBytes  int64 // uncompressed size
	FileBytes int64 // compressed size uploaded
}

// Result summarises a push.
type Result struct {
	Paths    int // paths in the closure
	Uploaded int
	Skipped  int // already in the cache
	// Repaired counts paths uploaded again because a garbage collection
	// that overlapped the push removed them (they are also in Uploaded).
	Repaired  int
	NarBytes  int64
	FileBytes int64
	Duration  time.Duration
}

// Retry is an exponential backoff within a time budget.
type Retry struct {
	Initial time.Duration // first wait; default 250ms
	Max     time.Duration // longest wait; default 10s
	Budget  time.Duration // total time for one object; default 2m
}

func (r Retry) withDefaults() Retry {
	if r.Initial <= 0 {
		r.Initial = 250 * time.Millisecond
	}
	if r.Max <= 0 {
		r.Max = 10 * time.Second
	}
	if r.Budget <= 0 {
		r.Budget = 2 * time.Minute
	}
	return r
}

// localError marks a failure to read the local store, which no retry cures.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// do runs f until it succeeds, fails with a local error, the context ends or
// the budget is spent.
func (r Retry) do(ctx context.Context, log *slog.Logger, what string, f func() error) error {
	r = r.withDefaults()
	deadline := time.Now().Add(r.Budget)
	wait := r.Initial
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		var le *localError
		if errors.As(err, &le) || ctx.Err() != nil {
			return err
		}
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		log.Warn("upload failed, retrying", "object", what, "attempt", attempt, "wait", wait, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, r.Max)
	}
}

// Push uploads paths and every path they reference, transitively, that the
// cache does not hold yet. A NAR is always uploaded before its narinfo, and a
// narinfo only after the narinfos of all its references, so at no moment
// does the cache advertise a path it cannot serve in full. An interrupted
// push leaves the cache consistent; running it again completes it.
func (p *Pusher) Push(ctx context.Context, paths ...string) (Result, error) {
	start := time.Now()
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	comp, err := ParseCompression(string(p.Compression))
	if err != nil {
		return Result{}, err
	}
	storePaths := make([]string, 0, len(paths))
	for _, path := range paths {
		sp, err := nix.StorePath(path)
		if err != nil {
			return Result{}, err
		}
		storePaths = append(storePaths, sp)
	}
	closure, err := p.Store.PathInfo(ctx, storePaths...)
	if err != nil {
		return Result{}, fmt.Errorf("closure: %w", err)
	}
	res := Result{Paths: len(closure)}

	// What the collection markers say before the cache is looked at: see
	// settle.
	gcBefore, err := p.gcState(ctx, log)
	if err != nil {
		return res, err
	}
	present, err := p.present(ctx, closure)
	if err != nil {
		return res, err
	}
	if err := p.ensureCacheInfo(ctx); err != nil {
		return res, err
	}

	var missing []nix.PathInfo
	for _, pi := range closure {
		if present[pi.Path] {
			res.Skipped++
			if p.Progress != nil {
				p.Progress(Event{Path: pi.Path, Skipped: true})
			}
			continue
		}
		missing = append(missing, pi)
	}
	if len(missing) > 0 {
		u := &upload{p: p, log: log, comp: comp, missing: missing, large: make(chan struct{}, largeJobs)}
		err = u.run(ctx)
		res.Uploaded = int(u.uploaded.Load())
		res.NarBytes = u.narBytes.Load()
		res.FileBytes = u.fileBytes.Load()
	}
	if err == nil {
		err = p.settle(ctx, log, comp, closure, gcBefore, &res)
	}
	res.Duration = time.Since(start)
	return res, err
}

// present reports which closure paths already have a narinfo in the cache.
func (p *Pusher) present(ctx context.Context, closure []nix.PathInfo) (map[string]bool, error) {
	present := make(map[string]bool, len(closure))
	if len(closure) >= listThreshold {
		have := make(map[string]bool)
		err := p.Backend.List(ctx, "", func(o Object) error {
			if strings.HasSuffix(o.Key, ".narinfo") {
				have[o.Key] = true
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", p.Backend, err)
		}
		for _, pi := range closure {
			present[pi.Path] = have[NarInfoKey(pi.Path)]
		}
		return present, nil
	}
	var mu sync.Mutex
	err := parallel.ForEach(ctx, len(closure), p.jobs(), func(i int) error {
		_, err := p.Backend.Stat(ctx, NarInfoKey(closure[i].Path))
		switch {
		case err == nil:
			mu.Lock()
			present[closure[i].Path] = true
			mu.Unlock()
		case !errors.Is(err, ErrNotFound):
			return fmt.Errorf("check %s: %w", NarInfoKey(closure[i].Path), err)
		}
		return nil
	})
	return present, err
}

func (p *Pusher) ensureCacheInfo(ctx context.Context) error {
	_, err := p.Backend.Stat(ctx, "nix-cache-info")
	if err == nil {
		return nil
	}
	if !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("check nix-cache-info: %w", err)
	}
	return p.Retry.do(ctx, p.Log, "nix-cache-info", func() error {
		if err := p.Backend.Put(ctx, "nix-cache-info", strings.NewReader(CacheInfo), int64(len(CacheInfo))); err != nil {
			return fmt.Errorf("write nix-cache-info: %w", err)
		}
		return nil
	})
}

func (p *Pusher) jobs() int {
	if p.Jobs > 0 {
		return p.Jobs
	}
	return 16
}

// largeJobs is how many large NARs may stream at once.
const largeJobs = 2

// upload is the state of one push's missing paths.
type upload struct {
	p       *Pusher
	log     *slog.Logger
	comp    Compression
	missing []nix.PathInfo
	large   chan struct{} // slots for large NARs streaming at once

	mu         sync.Mutex
	pending    map[string]int      // references not yet published
	dependents map[string][]string // path -> missing paths that reference it
	narDone    map[string]*NarInfo // NAR uploaded, narinfo ready to write
	published  map[string]bool

	uploaded  atomic.Int64
	narBytes  atomic.Int64
	fileBytes atomic.Int64
}

func (u *upload) run(ctx context.Context) error {
	byPath := make(map[string]nix.PathInfo, len(u.missing))
	for _, pi := range u.missing {
		byPath[pi.Path] = pi
	}
	u.pending = make(map[string]int, len(u.missing))
	u.dependents = make(map[string][]string)
	u.narDone = make(map[string]*NarInfo)
	u.published = make(map[string]bool)
	for _, pi := range u.missing {
		for _, ref := range pi.References {
			if ref == pi.Path {
				continue
			}
			if _, ok := byPath[ref]; ok {
				u.pending[pi.Path]++
				u.dependents[ref] = append(u.dependents[ref], pi.Path)
			}
		}
	}
	order := topoOrder(u.missing, byPath)
	return parallel.ForEach(ctx, len(order), u.p.jobs(), func(i int) error {
		pi := order[i]
		var info *NarInfo
		err := u.p.Retry.do(ctx, u.log, pi.Path, func() error {
			var err error
			info, err = u.uploadNar(ctx, pi)
			return err
		})
		if err != nil {
			return fmt.Errorf("upload %s: %w", pi.Path, err)
		}
		u.mu.Lock()
		u.narDone[pi.Path] = info
		ready := u.pending[pi.Path] == 0
		u.mu.Unlock()
		if ready {
			return u.publish(ctx, pi.Path)
		}
		return nil
	})
}

// publish writes the narinfo of path, whose NAR and references are all in
// the cache, then the narinfos of dependents that this makes ready.
func (u *upload) publish(ctx context.Context, path string) error {
	queue := []string{path}
	for len(queue) > 0 {
		path, queue = queue[0], queue[1:]
		u.mu.Lock()
		info := u.narDone[path]
		u.mu.Unlock()
		if err := u.writeNarInfo(ctx, info); err != nil {
			return err
		}
		u.mu.Lock()
		u.published[path] = true
		for _, d := range u.dependents[path] {
			u.pending[d]--
			if u.pending[d] == 0 && u.narDone[d] != nil && !u.published[d] {
				queue = append(queue, d)
			}
		}
		u.mu.Unlock()
	}
	return nil
}

func (u *upload) writeNarInfo(ctx context.Context, info *NarInfo) error {
	if err := info.Sign(u.p.Key); err != nil {
		return err
	}
	text := info.String()
	key := NarInfoKey(info.StorePath)
	err := u.p.Retry.do(ctx, u.log, key, func() error {
		return u.p.Backend.Put(ctx, key, strings.NewReader(text), int64(len(text)))
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	u.uploaded.Add(1)
	u.narBytes.Add(int64(info.NarSize))
	u.fileBytes.Add(int64(info.FileSize))
	if u.p.Progress != nil {
		u.p.Progress(Event{Path: info.StorePath, NarBytes: int64(info.NarSize), FileBytes: int64(info.FileSize)})
	}
	return nil
}

// pipeSize is how far compression may run ahead of a large NAR's upload.
const pipeSize = 16 << 20

// NarKey is the cache key of the NAR whose uncompressed hash is narHash.
// Naming NARs by the hash the store already knows (rather than by the hash
// of the compressed file, which is known only at the end) lets a NAR stream
// to its final key in one pass; the narinfo's URL field tells Nix the name.
func NarKey(narHash string, c Compression) string {
	return "nar/" + strings.TrimPrefix(narHash, "sha256:") + c.Ext()
}

// uploadNar streams the NAR of pi through compression into the cache and
// returns its (unsigned) narinfo. The upload fails, leaving nothing under
// its key, if the store's contents do not hash to what the store records.
func (u *upload) uploadNar(ctx context.Context, pi nix.PathInfo) (*NarInfo, error) {
	if pi.NarSize < smallNar {
		return u.uploadSmall(ctx, pi)
	}
	select {
	case u.large <- struct{}{}:
		defer func() { <-u.large }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	key := NarKey(pi.NarHash, u.comp)
	pipe := newBufPipe(pipeSize)
	fileHash := sha256.New()
	fileCount := &countWriter{}
	produced := make(chan error, 1)
	go func() {
		err := func() error {
			cw, err := u.comp.compressor(io.MultiWriter(markWriter{pipe}, fileHash, fileCount), 0)
			if err != nil {
				return &localError{err}
			}
			narHash, narSize, err := u.dump(pi, cw)
			if err != nil {
				cw.Close()
				return err
			}
			if err := cw.Close(); err != nil {
				return fmt.Errorf("compress nar: %w", err)
			}
			return checkDump(pi, narHash, narSize)
		}()
		pipe.CloseWrite(err) // the upload sees EOF only if everything checked out
		produced <- err
	}()
	putErr := u.p.Backend.Put(ctx, key, pipe, -1)
	pipe.CloseRead(putErr) // stops the producer if the upload gave up
	if err := <-produced; err != nil {
		return nil, err
	}
	if putErr != nil {
		return nil, fmt.Errorf("write %s: %w", key, putErr)
	}
	return u.narInfo(pi, key, fileHash, fileCount.n), nil
}

var (
	zstdPool = sync.Pool{New: func() any {
		w, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstdLevel),
			zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(smallNar))
		return w
	}}
	bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

// uploadSmall compresses a small NAR in memory so that it is uploaded in one
// request under its final name.
func (u *upload) uploadSmall(ctx context.Context, pi nix.PathInfo) (*NarInfo, error) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	fileHash := sha256.New()
	sink := io.MultiWriter(buf, fileHash)
	var cw io.WriteCloser
	if u.comp == Zstd {
		enc := zstdPool.Get().(*zstd.Encoder)
		defer zstdPool.Put(enc)
		enc.Reset(sink)
		cw = enc
	} else {
		var err error
		if cw, err = u.comp.compressor(sink, 1); err != nil {
			return nil, &localError{err}
		}
	}
	narHash, narSize, err := u.dump(pi, cw)
	if err != nil {
		cw.Close()
		return nil, err
	}
	if err := cw.Close(); err != nil {
		return nil, fmt.Errorf("compress nar: %w", err)
	}
	if err := checkDump(pi, narHash, narSize); err != nil {
		return nil, err
	}
	info := u.narInfo(pi, NarKey(pi.NarHash, u.comp), fileHash, int64(buf.Len()))
	if err := u.p.Backend.Put(ctx, info.URL, bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
		return nil, fmt.Errorf("write %s: %w", info.URL, err)
	}
	return info, nil
}

// dump writes the NAR serialisation of pi to w and returns its hash and size.
func (u *upload) dump(pi nix.PathInfo, w io.Writer) (string, uint64, error) {
	h := sha256.New()
	c := &countWriter{}
	src := filepath.Join(u.p.StoreRoot, pi.Path)
	if err := gonar.DumpPath(io.MultiWriter(w, h, c, streamCounter{&u.p.streamed}), src); err != nil {
		var le *localError
		if errors.As(err, &le) {
			return "", 0, err
		}
		// Reading the store or writing the compressor failed. A write error
		// comes from the backend (retryable); a read error is local.
		if isWriteErr(err) {
			return "", 0, fmt.Errorf("stream nar: %w", err)
		}
		return "", 0, &localError{fmt.Errorf("read %s: %w", src, err)}
	}
	return nixHash(h), uint64(c.n), nil
}

func isWriteErr(err error) bool {
	var we *writeErr
	return errors.As(err, &we)
}

// markWriter marks the errors of the backend writer it wraps as writeErr.
type markWriter struct{ w io.Writer }

func (m markWriter) Write(p []byte) (int, error) {
	n, err := m.w.Write(p)
	if err != nil {
		err = &writeErr{err}
	}
	return n, err
}

// writeErr marks an error returned by a backend writer, so that dump can tell
// it from a failure to read the store.
type writeErr struct{ err error }

func (e *writeErr) Error() string { return e.err.Error() }
func (e *writeErr) Unwrap() error { return e.err }

func checkDump(pi nix.PathInfo, narHash string, narSize uint64) error {
	if narHash != pi.NarHash || narSize != pi.NarSize {
		return &localError{fmt.Errorf("%s changed or is corrupt: store records %s (%d bytes), contents hash to %s (%d bytes)",
			pi.Path, pi.NarHash, pi.NarSize, narHash, narSize)}
	}
	return nil
}

func (u *upload) narInfo(pi nix.PathInfo, key string, fileHash hash.Hash, fileSize int64) *NarInfo {
	return &NarInfo{
		StorePath:   pi.Path,
		URL:         key,
		Compression: u.comp,
		FileHash:    nixHash(fileHash),
		FileSize:    uint64(fileSize),
		NarHash:     pi.NarHash,
		NarSize:     pi.NarSize,
		References:  pi.References,
		Deriver:     pi.Deriver,
		CA:          pi.CA,
	}
}

func nixHash(h hash.Hash) string { return "sha256:" + nixbase32.EncodeToString(h.Sum(nil)) }

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// topoOrder returns paths with every path after the paths it references, so
// that the leaves' narinfos can be published first.
func topoOrder(paths []nix.PathInfo, byPath map[string]nix.PathInfo) []nix.PathInfo {
	sorted := append([]nix.PathInfo(nil), paths...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	seen := make(map[string]bool, len(paths))
	order := make([]nix.PathInfo, 0, len(paths))
	var visit func(pi nix.PathInfo)
	visit = func(pi nix.PathInfo) {
		if seen[pi.Path] {
			return
		}
		seen[pi.Path] = true
		for _, ref := range pi.References {
			if dep, ok := byPath[ref]; ok && ref != pi.Path {
				visit(dep)
			}
		}
		order = append(order, pi)
	}
	for _, pi := range sorted {
		visit(pi)
	}
	return order
}

// PutLog uploads the build log of the derivation drvPath to log/<drv>, where
// `nix log` looks for it.
func PutLog(ctx context.Context, b Backend, drvPath string, r io.Reader, size int64) error {
	name := filepath.Base(drvPath)
	if !strings.HasSuffix(name, ".drv") || len(name) < 38 {
		return fmt.Errorf("put log: %q is not a derivation path", drvPath)
	}
	if err := b.Put(ctx, "log/"+name, r, size); err != nil {
		return fmt.Errorf("put log %s: %w", name, err)
	}
	return nil
}
