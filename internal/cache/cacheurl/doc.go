// Package cacheurl opens a cache.Backend from the URL a person configures:
// file:///var/lib/farm/cache (or a plain path) for a directory, and
// s3://bucket?endpoint=...&region=... for S3.
package cacheurl
