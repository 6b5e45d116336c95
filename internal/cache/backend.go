package cache

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned by Backend.Get and Backend.Stat when no object has the key.
var ErrNotFound = errors.New("not found")

// Object is one stored object as a listing reports it.
type Object struct {
	Key  string // slash-separated, relative to the cache root: "abc.narinfo", "nar/xyz.nar.zst"
	Size int64
	// ModTime is when the object was last written (a file's mtime, an S3
	// object's LastModified), by the clock of whatever stores it.
	ModTime time.Time
	// ETag is the store's tag of this version of the object (S3's ETag),
	// if it has one: a new write gets a new tag unless the content is
	// the same.
	ETag string
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
	// size is the length of r, or -1 when unknown (the object then streams:
	// memory does not grow with its size). If reading r fails, Put fails
	// and nothing is stored under key: a caller that finds its data bad
	// while streaming it returns an error from Read.
	Put(ctx context.Context, key string, r io.Reader, size int64) error

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

// BatchDeleter is implemented by backends that remove many objects in few
// requests (S3's DeleteObjects takes 1,000 keys per request).
type BatchDeleter interface {
	// DeleteMany removes the objects under keys; absent keys are not an
	// error. On failure some of the keys may be gone and others not: each
	// object is either wholly there or wholly gone. It is safe for
	// concurrent use.
	DeleteMany(ctx context.Context, keys []string) error
}

// DeleteMany removes the objects under keys through b's batch delete when it
// has one, else one Delete at a time. Absent keys are not an error.
func DeleteMany(ctx context.Context, b Backend, keys []string) error {
	if bd, ok := b.(BatchDeleter); ok {
		return bd.DeleteMany(ctx, keys)
	}
	for _, k := range keys {
		if err := b.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}
