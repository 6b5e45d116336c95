// Package testenv gives tests the real things they need (Nix, Docker, MinIO,
// PostgreSQL) and decides what happens when one is missing: a clear skip on a
// laptop that lacks it, a failure when CI=true.
package testenv
