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

	"github.com/klauspost/compress/zstd"
	gonar "github.com/nix-community/go-nix/pkg/nar"
	"github.com/nix-community/go-nix/pkg/nixbase32"

	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/parallel"
)

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
	// Each upload runs under ctx, not the group's context: a failed upload
	// stops new ones from starting, and lets those running finish.
	order := topoOrder(u.missing, byPath)
	err := parallel.ForEach(ctx, len(order), u.p.jobs(), func(i int) error {
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
	if err != nil {
		return err
	}
	return ctx.Err()
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
