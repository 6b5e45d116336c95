// Package cache writes and reads Nix binary caches: NARs streamed through
// compression while they are hashed, narinfo files signed with the farm's
// ed25519 key, uploaded in an order that never lets the cache advertise a path
// whose NAR or references are missing. Where the bytes live is a Backend: a
// directory (internal/cache/file) or S3 (internal/cache/s3).
package cache
