// Package gc collects the garbage of a binary cache: every narinfo not
// reachable through References from a set of roots, the NARs no remaining
// narinfo points at, and the build logs of derivations no kept path came from.
//
// # Mark and sweep
//
// Mark walks References from the roots while it lists the narinfos, then
// from every narinfo the listing found younger than the grace period (a
// push in flight is a root), reading each narinfo once. Paths are kept as
// the 20 bytes their 32-character hash part encodes, NARs and derivations as
// 20-byte digests, so memory grows by a few dozen bytes per path above a
// fixed base. Only listed narinfos older than the grace period that marking
// did not reach are garbage. The listing starts after the collection's
// marker is written (see below); nothing else depends on when it runs.
// Every narinfo read must be signed by one of the trusted keys, or nothing
// is deleted (this is not the farm's cache).
//
// # The index
//
// Reading every narinfo is most of a collection's cost on S3 (one GET
// each). With Collector.Index set (builder serve keeps one in its state
// directory; `builder cache gc --index`), a collection keeps, per narinfo
// it read, the version the listing showed (size, time and ETag) and what
// marking needs (NAR, deriver, references, store path). The next
// collection lists first and reads only the narinfos whose listed version
// differs from the one indexed, or that are not indexed: a daily
// collection reads what was pushed since the last one. An entry is never
// older than the version it names (the listing precedes the read), an
// index made for another cache, other trusted keys or another layout is
// not used, and a narinfo written again in any way is read again, so the
// index changes what is read, never what is kept. It is local state of
// one collector, replaced atomically after the narinfos are swept; losing
// it only makes the next collection read everything again.
//
// The sweep deletes garbage narinfos dependents first (in waves: a narinfo
// goes only once no remaining narinfo references it), then the NARs that no
// kept narinfo points at and that are older than the grace period, then the
// logs older than the grace period whose derivation is the deriver of no
// kept path (so the logs of a collection killed before its last phase go
// the next time). A kill at any point therefore leaves a cache in which
// every narinfo's NAR and references are present. Deletes go in batches
// (one request each on S3), up to four at once where their order does not
// matter: the narinfos of one wave, the NARs, the logs. Each batch starts
// only while the collection holds its lease (below) and is cancelled before
// the lease could lapse.
//
// # Racing a push
//
// Grace periods alone do not make a concurrent push safe: a pusher finds X's
// narinfo present and skips it; a collection that marked before the
// pusher's narinfo Y existed deletes X; Y now references a missing path. The
// collection and cache.Pusher close that race with two markers in the cache:
//
//   - The collector writes gc/running (a random id, its start, a heartbeat
//     counter and time, and how old a heartbeat may get) before it lists
//     anything, refreshes the heartbeat every StaleAfter/4, and deletes
//     nothing once its last successful heartbeat is older than StaleAfter/2
//     (it has lost its lease: pushers may think it dead). When it ends it
//     writes gc/last and removes gc/running.
//   - A pusher reads both markers before it checks what the cache holds.
//     After writing its last narinfo it reads them again, waiting while a
//     live (not stale) collection runs. If a collection was alive at the
//     first read, or the markers changed in between, a collection overlapped
//     the push: the pusher checks every narinfo and NAR of its closure,
//     uploads what is missing, and repeats with the markers read last as
//     the new "before", until a round sees no collection.
//
// Why that suffices: a collection deletes only between writing gc/running
// and removing it. If that span overlaps the pusher's span from its first
// marker read to its last, the pusher sees the collection alive at the first
// read, or sees the markers change; it then waits for the collection's end
// and repairs what it lost, and a repair round is checked the same way. If
// the collection ended before the pusher's first read, the pusher's
// existence checks saw the cache after every delete. If the collection
// started after the pusher's last read, every narinfo of the push exists
// when it lists, those written within the grace period are roots, and
// everything else goes dependents first, so nothing left references a
// missing path. Markers and objects must be read-after-write consistent
// (a directory, MinIO and S3 are). Staleness compares the collector's clock
// with the reader's: clocks must agree within StaleAfter/2 (default one
// minute). Writers that bypass cache.Pusher (nix copy) are protected by the
// grace period only.
//
// # Measured
//
// BenchmarkCollect (bench_test.go) collects a synthetic cache, half of its
// paths garbage, references 20 deep, in a child process, and reports its
// time, CPU time and peak RSS; the goal is under 60 s and 200 MiB for
// 100,000 paths, memory growing slower than the paths. The "-indexed"
// cases are the daily collection: a dry run (not timed) wrote the index
// first, as the collection of the day before would have. Figures of
// 2026-12-02 on the 2-core build machine; the indexed runs at load 0.3 to
// 4, the others while other engineers ran their tests (load 2 to 12), so
// times are loose and comparisons are ratios of runs side by side:
//
//   - Directory: 100,000 paths in 11.3 s (16.9 CPU-s), peak RSS 40.5 MiB;
//     25,000 in 1.8 s, 23.7 MiB (4 times the paths, 1.7 times the memory).
//     Indexed: 100,000 in 4.0 s (5.4 CPU-s), 90.6 MiB; 25,000 in 0.9 s,
//     35.7 MiB (4 times the paths, 2.5 times the memory).
//   - MinIO (Docker, loopback), indexed: 100,000 paths in 52.1 and 54.3 s
//     (two runs; 5.6 and 6.4 CPU-s), peak RSS 98.0 MiB: listing and index
//     about 5 s, deleting the narinfos 21 to 22 s and the NARs 23 to 26 s.
//     Goal met.
//   - MinIO without an index (the first collection of a cache): 100,000
//     paths in 117 s (47.8 CPU-s), peak RSS 46.1 MiB; 25,000 in 28 to
//     34 s, 35 MiB. MinIO itself used 125 CPU-s to serve it (one GET per
//     narinfo, every object deleted in batches, a listing of the narinfos
//     and one of the NARs), more than two cores give in 60 s, whatever the
//     collector does: the reads alone took 71 s, which is what the index
//     saves.
//   - Against the version before (each narinfo listed twice, one delete
//     batch at a time), on identical caches in one MinIO: 0.79 times the
//     time at 100,000 paths (148.7 s to 117.8 s; MinIO's CPU 0.89 times,
//     the collector's unchanged), 0.82 times at 25,000 (mean of two runs
//     each, alternated). Deleting narinfos took 0.58 times as long and NARs
//     0.63 times; the reads took as long (67 s before, 71 s after): MinIO
//     serves them no faster with 64 requests in flight than with 4.
package gc
