// Package s3 is the cache.Backend for S3 services (MinIO, Garage, R2, AWS),
// built on minio-go.
//
// A backend is opened from a URL:
//
//	s3://bucket?endpoint=http://127.0.0.1:9000&region=us-east-1&prefix=cache
//
// Requests use path-style addressing, so any S3 service works without DNS
// for bucket names. Credentials come from the environment or from files,
// never from the URL (see Open).
package s3
