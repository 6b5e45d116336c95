package miniotest_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/homelab-farm/farm/internal/testenv/miniotest"
)

func TestMain(m *testing.M) { miniotest.Main(m) }

func TestSharedServer(t *testing.T) {
	s := miniotest.Start(t)
	if s2 := miniotest.Start(t); s2 != s {
		t.Errorf("Start twice: got two servers, want one shared")
	}
	if !strings.HasPrefix(s.Endpoint(), "http://127.0.0.1:") {
		t.Errorf("Endpoint() = %q, want http://127.0.0.1:PORT", s.Endpoint())
	}
	b1, b2 := s.NewBucket(t), s.NewBucket(t)
	if b1 == b2 {
		t.Errorf("NewBucket twice: got %q both times", b1)
	}
	put(t, s, b1, "k", "v")
	if got := get(t, s, b1, "k"); got != "v" {
		t.Errorf("get k = %q, want %q", got, "v")
	}
	if want := "s3://" + b1 + "?endpoint=" + s.Endpoint() + "&region=us-east-1"; s.CacheURL(b1) != want {
		t.Errorf("CacheURL = %q, want %q", s.CacheURL(b1), want)
	}
	if got := s.Getenv("AWS_SECRET_ACCESS_KEY"); got != s.SecretKey() {
		t.Errorf("Getenv(AWS_SECRET_ACCESS_KEY) = %q, want the secret key", got)
	}
}

func TestPublicRead(t *testing.T) {
	s := miniotest.Start(t)
	bucket := s.NewBucket(t)
	put(t, s, bucket, "nix-cache-info", "StoreDir: /nix/store\n")

	if got := anonymousGet(t, s.Endpoint()+"/"+bucket+"/nix-cache-info"); got != http.StatusForbidden {
		t.Errorf("anonymous GET before SetPublicRead: status %d, want 403", got)
	}
	s.SetPublicRead(t, bucket)
	if got := anonymousGet(t, s.Endpoint()+"/"+bucket+"/nix-cache-info"); got != http.StatusOK {
		t.Errorf("anonymous GET of an object: status %d, want 200", got)
	}
	if got := anonymousGet(t, s.Endpoint()+"/"+bucket+"/missing.narinfo"); got != http.StatusNotFound {
		t.Errorf("anonymous GET of a missing key: status %d, want 404", got)
	}
}

func TestStopRestartKeepsPortAndData(t *testing.T) {
	s := miniotest.StartDedicated(t)
	bucket := s.NewBucket(t)
	put(t, s, bucket, "k", "kept")
	endpoint := s.Endpoint()

	s.Stop(t)
	if _, err := http.Get(endpoint + "/minio/health/live"); err == nil {
		t.Fatalf("GET %s after Stop: no error, want connection refused", endpoint)
	}
	s.Restart(t)
	if s.Endpoint() != endpoint {
		t.Errorf("endpoint after Restart = %s, want %s", s.Endpoint(), endpoint)
	}
	if got := get(t, s, bucket, "k"); got != "kept" {
		t.Errorf("get k after Restart = %q, want %q", got, "kept")
	}
	s.Restart(t) // while running: stop and start
	if got := get(t, s, bucket, "k"); got != "kept" {
		t.Errorf("get k after second Restart = %q, want %q", got, "kept")
	}
}

func put(t *testing.T, s *miniotest.Server, bucket, key, value string) {
	t.Helper()
	_, err := s.Client().PutObject(context.Background(), bucket, key, bytes.NewReader([]byte(value)), int64(len(value)), minio.PutObjectOptions{})
	if err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
}

func get(t *testing.T, s *miniotest.Server, bucket, key string) string {
	t.Helper()
	obj, err := s.Client().GetObject(context.Background(), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read %s/%s: %v", bucket, key, err)
	}
	return string(b)
}

func anonymousGet(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
