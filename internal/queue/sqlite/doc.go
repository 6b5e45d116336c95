// Package sqlite is the embedded queue: queue.Queue on one SQLite file
// (modernc.org/sqlite, pure Go), in WAL mode with synchronous=FULL so that a
// job is on disk when Enqueue returns. One process owns the file.
package sqlite
