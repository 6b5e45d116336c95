package cache_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/testenv"
	"github.com/homelab-farm/farm/internal/testenv/miniotest"
)

// TestPushAcrossMinIOOutage stops MinIO in the middle of a push. When it
// comes back within the retry budget the push completes; when it does not,
// the push fails with one clear error. Either way the cache stays consistent.
func TestPushAcrossMinIOOutage(t *testing.T) {
	env := testenv.Nix(t)
	client := &nix.Client{Env: env}
	out, err := client.BuildFile(context.Background(), "testdata/chain.nix",
		"--argstr", "salt", "outage-"+strconv.FormatInt(time.Now().UnixNano(), 10))
	if err != nil {
		t.Fatalf("build chain: %v", err)
	}
	top := out[0]
	key, err := cache.GenerateKey("farm-outage-1")
	if err != nil {
		t.Fatal(err)
	}
	srv := miniotest.StartDedicated(t)

	cases := []struct {
		name     string
		budget   time.Duration
		downFor  time.Duration // 0: back only after the push returned
		wantFail bool
	}{
		{"back within the budget", 90 * time.Second, 3 * time.Second, false},
		{"back too late", 3 * time.Second, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bucket := srv.NewBucket(t)
			b := openS3(t, srv, bucket)
			first := make(chan struct{})
			down := make(chan struct{})
			var once sync.Once
			p := &cache.Pusher{
				Backend: b, Key: key, Store: client, Jobs: 1,
				Retry: cache.Retry{Initial: 200 * time.Millisecond, Max: time.Second, Budget: tc.budget},
				Progress: func(cache.Event) {
					once.Do(func() { close(first); <-down }) // hold the push until MinIO is down
				},
			}
			type result struct {
				res cache.Result
				err error
			}
			done := make(chan result, 1)
			go func() {
				res, err := p.Push(context.Background(), top)
				done <- result{res, err}
			}()
			<-first
			srv.Stop(t)
			close(down)
			downAt := time.Now()
			var r result
			if tc.downFor > 0 {
				time.Sleep(tc.downFor)
				srv.Restart(t)
				r = <-done
				if waited := time.Since(downAt); waited < tc.downFor {
					t.Fatalf("push returned %s after MinIO stopped, before it came back", waited)
				}
			} else {
				r = <-done
				srv.Restart(t)
			}
			trusted := []cache.PublicKey{key.Public()}
			rep, err := cache.Verify(context.Background(), b, trusted, cache.VerifyOptions{})
			if err != nil || !rep.OK() {
				t.Fatalf("after the outage: Verify = %+v, %v; want a consistent cache", rep, err)
			}
			if tc.wantFail {
				if r.err == nil {
					t.Fatalf("push succeeded with MinIO down past the retry budget")
				}
				if msg := r.err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "gave up") {
					t.Errorf("error %q: want one line saying it gave up", msg)
				}
				if _, err := p.Push(context.Background(), top); err != nil {
					t.Fatalf("push again once MinIO is back: %v", err)
				}
				rep, err = cache.Verify(context.Background(), b, trusted, cache.VerifyOptions{})
				if err != nil || !rep.OK() || rep.NarInfos != 8 {
					t.Fatalf("after pushing again: Verify = %+v, %v; want 8 consistent paths", rep, err)
				}
				return
			}
			if r.err != nil {
				t.Fatalf("push across a %s outage: %v", tc.downFor, r.err)
			}
			if rep.NarInfos != 8 || r.res.Uploaded != 8 {
				t.Fatalf("push uploaded %d, cache holds %d; want 8 and 8", r.res.Uploaded, rep.NarInfos)
			}
		})
	}
}
