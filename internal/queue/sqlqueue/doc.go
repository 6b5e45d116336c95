// Package sqlqueue implements queue.Queue on database/sql. The SQL is written
// once, with $n placeholders that both SQLite (modernc.org/sqlite) and
// PostgreSQL (pgx) accept, and so is the schema (Schema, with a column type
// map per database); a Dialect supplies what differs: the column types, row
// locking for Claim, and serialisation of enqueues on one branch. The
// queue/sqlite and queue/postgres packages open a database and hand it here.
package sqlqueue
