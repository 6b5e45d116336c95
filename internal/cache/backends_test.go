package cache_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/s3"
	"github.com/homelab-farm/farm/internal/testenv/miniotest"
)

func backendCases() []backendCase {
	return []backendCase{fileBackendCase(), s3BackendCase()}
}

// s3BackendCase is a fresh bucket on the shared MinIO, readable without
// credentials so that the real nix client substitutes straight from it.
func s3BackendCase() backendCase {
	return backendCase{"s3", func(t *testing.T) (cache.Backend, string) {
		srv := miniotest.Start(t)
		bucket := srv.NewBucket(t)
		srv.SetPublicRead(t, bucket)
		return openS3(t, srv, bucket), srv.Endpoint() + "/" + bucket
	}}
}

func openS3(t *testing.T, srv *miniotest.Server, bucket string) *s3.Backend {
	t.Helper()
	u, err := url.Parse(srv.CacheURL(bucket))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s3.Open(context.Background(), u, srv.Getenv)
	if err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
	return b
}
