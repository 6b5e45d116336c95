// Package state keeps what the builder knows beyond its queue: evaluations
// and their per-host targets, each target's closure diffs (against what its
// host runs and against the previous build; the diff itself is the
// pipeline's JSON, kept opaque here beside its summary), each host's
// desired and reported closure with its signed manifest, the append-only
// event log that the API serves as Server-Sent Events, and the record of
// the binary cache's collections (their sizes, and which instance runs the
// next scheduled one).
//
// Two databases hold it, behind one Interface and one contract suite
// (statetest): one SQLite file (Open; WAL, synchronous=FULL), owned by one
// builder, the embedded default; and PostgreSQL (OpenPostgres), shared by
// any number of builder instances, which are then one farm. The SQL and
// the schema are written once; sqlqueue's column type map adapts the schema.
//
// What several instances on PostgreSQL rely on:
//
//   - Deploy sequence numbers come from one counter row, incremented by
//     INSERT … ON CONFLICT DO UPDATE … RETURNING, which locks the row: no two
//     calls on any instances get the same number, and every number is
//     higher than all those handed out before it. SetDesired keeps a
//     host's highest seq whichever instance writes last. A builder moving
//     from SQLite carries its counter over (CarrySeq), since agents refuse
//     a seq at or below the last one they applied.
//
//   - The next scheduled cache collection is due at the time in one counter
//     row; ClaimCollection moves it on with a conditional upsert that only
//     one caller per due time gets a row back from, so one instance
//     collects per interval however many share the database.
//
//   - The event log has one order that a reader never skips. An id from a
//     sequence is taken at insert, but transactions may commit in another
//     order, so a reader at id N could miss an N-1 committed later. Every
//     transaction that appends takes one transaction-scoped advisory lock
//     before it inserts, so ids are taken and committed in the same order:
//     when a reader sees event N, every event below N is already visible.
//
//   - Wake-ups travel by LISTEN/NOTIFY: an append sends pg_notify in its
//     own transaction, which PostgreSQL delivers at commit, and each Store
//     keeps one connection listening and closes its Changed channel on
//     every notification. A notification carries no data; a woken reader
//     reads the log from its cursor, so a lost or merged notification costs
//     nothing but latency. Polling would cost a query per follower per tick
//     and add up to a tick of delay to every event; LISTEN/NOTIFY is as
//     fast as the commit and idle when nothing happens. While the listening
//     connection is down, Changed fires every second (polling) until it is
//     back, so followers still progress.
package state
