package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/miniotest"
)

func TestMain(m *testing.M) { miniotest.Main(m) }

// mapEnv is a getenv over a fixed map, so tests never see the process's.
func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// smallPath builds a one-file store path for the command tests.
func smallPath(t *testing.T) string {
	t.Helper()
	env := testenv.Nix(t)
	expr := filepath.Join(t.TempDir(), "p.nix")
	src := `derivation { name = "cmd-test-` + strconv.FormatInt(time.Now().UnixNano(), 10) +
		`"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo hi > $out" ]; }`
	if err := os.WriteFile(expr, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := (&nix.Client{Env: env}).BuildFile(context.Background(), expr)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "NIX_CONFIG="); ok {
			t.Setenv("NIX_CONFIG", v) // the command's nix calls need it too
		}
	}
	return out[0]
}

func writeKey(t *testing.T, dir string) (string, cache.SecretKey) {
	t.Helper()
	k, err := cache.GenerateKey("farm-cmd-1")
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "signing.key")
	if err := os.WriteFile(f, []byte(k.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f, k
}

func TestCachePushBadInput(t *testing.T) {
	path := smallPath(t)
	dir := t.TempDir()
	keyFile, key := writeKey(t, dir)
	badKey := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(badKey, []byte("farm-1:not base64 at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	pubAsSecret := filepath.Join(dir, "public.key")
	if err := os.WriteFile(pubAsSecret, []byte(key.Public().String()), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := miniotest.Start(t)
	accessFile := filepath.Join(dir, "access")
	if err := os.WriteFile(accessFile, []byte(srv.AccessKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	bucket := srv.NewBucket(t)
	missingBucketURL := srv.CacheURL(bucket + "-missing")

	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"missing key file", []string{"--signing-key-file", filepath.Join(dir, "nope.key"), path}, nil, "nope.key"},
		{"no key file", []string{path}, nil, "no signing key file"},
		{"malformed key", []string{"--signing-key-file", badKey, path}, nil, "malformed key"},
		{"public key as secret", []string{"--signing-key-file", pubAsSecret, path}, nil, "malformed key"},
		{"path not in the store", []string{"--signing-key-file", keyFile, "/nix/store/00000000000000000000000000000000-absent"}, nil, "not in the Nix store"},
		{"path outside the store", []string{"--signing-key-file", keyFile, dir}, nil, "not in the Nix store"},
		{"unknown scheme", []string{"--signing-key-file", keyFile, "--cache", "ftp://cache.example/x", path}, nil, "unknown cache URL scheme"},
		{"unknown compression", []string{"--signing-key-file", keyFile, "--compression", "lz4", path}, nil, "unknown compression"},
		{"missing bucket", []string{"--signing-key-file", keyFile, "--cache", missingBucketURL, path},
			map[string]string{"AWS_ACCESS_KEY_ID": srv.AccessKey(), "AWS_SECRET_ACCESS_KEY": srv.SecretKey()}, bucket + "-missing"},
		{"unreadable credentials", []string{"--signing-key-file", keyFile, "--cache", srv.CacheURL(bucket), path},
			map[string]string{"AWS_ACCESS_KEY_ID_FILE": accessFile, "AWS_SECRET_ACCESS_KEY_FILE": filepath.Join(dir, "no-secret")}, "no-secret"},
		{"wrong credentials", []string{"--signing-key-file", keyFile, "--cache", srv.CacheURL(bucket), path},
			map[string]string{"AWS_ACCESS_KEY_ID": srv.AccessKey(), "AWS_SECRET_ACCESS_KEY": "not-the-secret"}, bucket},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cacheDir := filepath.Join(t.TempDir(), "cache")
			args := append([]string{"cache", "push", "--quiet", "--cache", "file://" + cacheDir}, tc.args...)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), args, mapEnv(tc.env), &stdout, &stderr)
			if err == nil {
				t.Fatalf("push succeeded; want an error mentioning %q", tc.wantErr)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.wantErr) {
				t.Errorf("error %q does not mention %q", msg, tc.wantErr)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			if strings.Contains(msg+stderr.String(), srv.SecretKey()) || strings.Contains(msg+stderr.String(), key.String()) {
				t.Errorf("a secret leaked into the error or output: %q", msg)
			}
			if _, err := os.Stat(cacheDir); err == nil {
				t.Errorf("the directory cache was created after an error")
			}
		})
	}
	for obj := range srv.Client().ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		t.Errorf("bucket holds %q after failed pushes, want nothing written", obj.Key)
	}
}

func TestCachePushVerify(t *testing.T) {
	path := smallPath(t)
	dir := t.TempDir()
	keyFile, key := writeKey(t, dir)
	cacheURL := "file://" + filepath.Join(dir, "cache")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"cache", "push", "--quiet", "--cache", cacheURL, "--signing-key-file", keyFile, path},
		mapEnv(nil), &out, &out); err != nil {
		t.Fatalf("push: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "pushed 1 of 1 paths") {
		t.Errorf("push summary = %q, want it to say 1 of 1 paths", out.String())
	}
	verify := func() (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), []string{"cache", "verify", "--cache", cacheURL, "--trusted-key", key.Public().String()},
			mapEnv(nil), &out, &out)
		return out.String(), err
	}
	if out, err := verify(); err != nil || !strings.Contains(out, "1 paths") || !strings.Contains(out, "0 problems") {
		t.Fatalf("verify = %v\n%s\nwant success with 1 path and 0 problems", err, out)
	}
	// Corrupt the NAR: verify must exit non-zero and name it.
	nars, _ := filepath.Glob(filepath.Join(dir, "cache", "nar", "*"))
	if len(nars) != 1 {
		t.Fatalf("found NARs %v, want one", nars)
	}
	if err := os.WriteFile(nars[0], []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	out2, err := verify()
	if err == nil || !strings.Contains(out2, filepath.Base(nars[0])) {
		t.Fatalf("verify of a corrupt NAR = %v\n%s\nwant an error naming the NAR", err, out2)
	}
	// Another key: every signature is untrusted.
	other, _ := cache.GenerateKey("farm-cmd-1")
	var out3 bytes.Buffer
	err = run(context.Background(), []string{"cache", "verify", "--quick", "--cache", cacheURL, "--trusted-key", other.Public().String()},
		mapEnv(nil), &out3, &out3)
	if err == nil || !strings.Contains(out3.String(), "no valid signature") {
		t.Fatalf("verify with another key = %v\n%s\nwant a signature problem", err, out3.String())
	}
}
