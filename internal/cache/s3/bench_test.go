package s3_test

import (
	"context"
	"fmt"
	"io"
	"testing"
)

// BenchmarkStage stages and commits objects of several sizes, one at a time
// (b.SetBytes: MB/s is the end-to-end rate including the server-side copy).
func BenchmarkStage(b *testing.B) {
	for _, size := range []int64{1 << 10, 512 << 10, 4 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			ctx := context.Background()
			be, _, _ := newBackend(b)
			b.SetBytes(size)
			i := 0
			for b.Loop() {
				st, err := be.Stage(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(st, io.LimitReader(newRandReader(uint64(i)), size)); err != nil {
					b.Fatal(err)
				}
				if err := st.Commit(ctx, fmt.Sprintf("nar/%d.nar.zst", i)); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkPut puts objects of several sizes with their size known.
func BenchmarkPut(b *testing.B) {
	for _, size := range []int64{1 << 10, 512 << 10, 4 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			ctx := context.Background()
			be, _, _ := newBackend(b)
			b.SetBytes(size)
			i := 0
			for b.Loop() {
				if err := be.Put(ctx, fmt.Sprintf("nar/%d.nar.zst", i), io.LimitReader(newRandReader(uint64(i)), size), size); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
