package cache

import (
	"context"
	"errors"
	"io"
)

// ErrNotFound is returned by Backend.Get and Backend.Stat when no object has the key.
var ErrNotFound = errors.New("not found")

// Object is one stored object as a listing reports it.
type Object struct {
	Key  string // slash-separated, relative to the cache root: "abc.narinfo", "nar/xyz.nar.zst"
	Size int64
}

// Backend stores a binary cache's objects under slash-separated keys
// ("nix-cache-info", "<hash>.narinfo", "nar/<filehash>.nar.zst", "log/<drv>").
//
// Every write is atomic: a reader sees the whole object under its key or no
// object at all, never a partial one, even if the writing process is killed.
// Implementations are safe for concurrent use. Errors wrap ErrNotFound where
// the object is absent; every other error is an I/O or service failure that a
// caller may retry.
type Backend interface {
	// Put stores the bytes of r under key, replacing any object there.
	// size is the length of r, or -1 when unknown.
	Put(ctx context.Context, key string, r io.Reader, size int64) error

	// Stage starts an object whose key is known only once its content has been
	// written (a NAR is named by the hash of its compressed bytes). Nothing is
	// visible under any key until Commit returns nil.
	Stage(ctx context.Context) (Staged, error)

	// Get opens the object under key. The caller closes the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, error)

	// Stat returns the size of the object under key.
	Stat(ctx context.Context, key string) (int64, error)

	// List calls fn for every object directly inside dir ("" for the root,
	// "nar/" for NARs), not descending further. It stops at fn's first error
	// and returns it. Objects written while List runs may or may not be seen.
	List(ctx context.Context, dir string, fn func(Object) error) error

	// Delete removes the object under key; deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error

	// String names the backend for messages, without credentials.
	String() string
}

// Staged is an object being written by Backend.Stage.
type Staged interface {
	io.Writer
	// Commit makes what was written visible under key. After Commit or Abort
	// the Staged must not be used again.
	Commit(ctx context.Context, key string) error
	// Abort discards what was written. It is safe to call after Commit, where
	// it does nothing.
	Abort() error
}
