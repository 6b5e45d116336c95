package s3

import (
	"context"
	"io"
	"math/rand/v2"
	"net/url"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/testenv/miniotest"
)

func TestExp(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	u, _ := url.Parse(srv.CacheURL(bucket))
	b, err := Open(context.Background(), u, srv.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	const size = 256 << 20
	for _, th := range []uint{0, 2, 4, 0, 2, 4} {
		expThreads = th
		start := time.Now()
		st, _ := b.Stage(context.Background())
		io.Copy(st, io.LimitReader(rand.NewChaCha8([32]byte{}), size))
		if err := st.Commit(context.Background(), "nar/x.nar"); err != nil {
			t.Fatal(err)
		}
		d := time.Since(start)
		start = time.Now()
		if err := b.Put(context.Background(), "nar/y.nar", io.LimitReader(rand.NewChaCha8([32]byte{}), size), -1); err != nil {
			t.Fatal(err)
		}
		d2 := time.Since(start)
		t.Logf("threads %d: stage %.0f MiB/s put %.0f MiB/s", th, float64(size>>20)/d.Seconds(), float64(size>>20)/d2.Seconds())
	}
}
