package file

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/homelab-farm/farm/internal/cache"
)

// tmpPrefix starts the names of files being written; List never reports them.
const tmpPrefix = ".tmp-"

// Backend is a cache in a directory.
type Backend struct {
	root string
}

var (
	_ cache.Backend      = (*Backend)(nil)
	_ cache.BatchDeleter = (*Backend)(nil)
)

// Open returns the cache in dir, creating the directory if needed.
func Open(dir string) (*Backend, error) {
	if dir == "" {
		return nil, errors.New("file cache: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("file cache %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("file cache: %w", err)
	}
	return &Backend{root: abs}, nil
}

// Root is the cache's directory.
func (b *Backend) Root() string { return b.root }

func (b *Backend) String() string { return "file://" + b.root }

// path maps a key to a file. A key cache.CheckKey refuses (one that could
// escape the root, or name a temporary file) is cache.ErrNotFound.
func (b *Backend) path(key string) (string, error) {
	if err := cache.CheckKey(key); err != nil {
		return "", err
	}
	clean := path.Clean("/" + key)
	if clean != "/"+key || strings.HasPrefix(path.Base(clean), tmpPrefix) {
		return "", fmt.Errorf("invalid key %q: %w", key, cache.ErrNotFound)
	}
	return filepath.Join(b.root, filepath.FromSlash(clean)), nil
}

// Put writes r to a temporary file next to key's file and renames it into place.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	st, err := b.stage(key)
	if err != nil {
		return err
	}
	defer st.Abort()
	n, err := io.Copy(st, ctxReader{ctx, r})
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("write %s: got %d bytes, want %d", key, n, size)
	}
	return st.Commit(ctx, key)
}

func (b *Backend) stage(key string) (*staged, error) {
	p, err := b.path(key)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, tmpPrefix+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create temporary file: %w", err)
	}
	return &staged{b: b, f: f, tmp: tmp}, nil
}

type staged struct {
	b    *Backend
	f    *os.File
	tmp  string
	done bool
}

func (s *staged) Write(p []byte) (int, error) { return s.f.Write(p) }

func (s *staged) Commit(ctx context.Context, key string) error {
	if s.done {
		return errors.New("staged object already committed or aborted")
	}
	p, err := s.b.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	if err := os.Rename(s.tmp, p); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	s.done = true
	return nil
}

func (s *staged) Abort() error {
	if s.done {
		return nil
	}
	s.done = true
	s.f.Close()
	if err := os.Remove(s.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (b *Backend) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := b.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, mapErr(key, err)
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s: %w", key, cache.ErrNotFound)
	}
	return f, nil
}

func (b *Backend) Stat(ctx context.Context, key string) (int64, error) {
	p, err := b.path(key)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return 0, mapErr(key, err)
	}
	if fi.IsDir() {
		return 0, fmt.Errorf("%s: %w", key, cache.ErrNotFound)
	}
	return fi.Size(), nil
}

func (b *Backend) List(ctx context.Context, dir string, fn func(cache.Object) error) error {
	dir = strings.Trim(dir, "/")
	full := b.root
	prefix := ""
	if dir != "" {
		p, err := b.path(dir)
		if err != nil {
			return err
		}
		full, prefix = p, dir+"/"
	}
	f, err := os.Open(full)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	defer f.Close()
	for {
		entries, err := f.ReadDir(1024)
		for _, e := range entries {
			if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), tmpPrefix) {
				continue
			}
			info, ierr := e.Info()
			if ierr != nil {
				continue // removed meanwhile
			}
			if err := fn(cache.Object{Key: prefix + e.Name(), Size: info.Size(), ModTime: info.ModTime()}); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", dir, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

func (b *Backend) Delete(ctx context.Context, key string) error {
	p, err := b.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// DeleteMany removes the files under keys one by one: a directory has no
// batch delete, and each removal is atomic.
func (b *Backend) DeleteMany(ctx context.Context, keys []string) error {
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

func mapErr(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", key, cache.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", key, err)
}

// ctxReader stops a copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
