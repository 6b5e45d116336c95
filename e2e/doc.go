// Package e2e runs the farm's programs (builder, notifier, agent) as
// processes, built once per test run, against real PostgreSQL, real MinIO,
// real git repositories, the real nix and real remote build machines: the
// tests of what only the whole farm does (several builders on one
// database, failover after a SIGKILL, builds on another machine). It holds
// tests only.
package e2e
