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
