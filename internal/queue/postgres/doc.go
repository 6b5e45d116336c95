// Package postgres is the shared queue: queue.Queue on PostgreSQL through
// pgx, for several builder instances taking work from one database. Claim
// locks rows with FOR UPDATE SKIP LOCKED, so claimers never wait on each
// other; enqueues on one branch serialise on an advisory lock so that
// superseding sees every older job.
//
// internal/state keeps the builder's state in the same database
// (state.OpenPostgres), so the instances are one farm.
//
// The DSN is pgx's: a URL or key=value string. A search_path parameter
// (postgres://…/farm?search_path=myschema) puts the tables in that schema.
package postgres
