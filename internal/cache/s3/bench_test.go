package s3_test

import (
	"context"
	"fmt"
	"io"
	"testing"
)

// BenchmarkPut puts objects of several sizes, with their size known and
// streamed with size -1 (as the pusher streams NARs).
func BenchmarkPut(b *testing.B) {
	for _, size := range []int64{1 << 10, 512 << 10, 4 << 20, 64 << 20} {
		for _, known := range []bool{true, false} {
			name := fmt.Sprintf("%dKiB/size=known", size>>10)
			if !known {
				name = fmt.Sprintf("%dKiB/size=-1", size>>10)
			}
			b.Run(name, func(b *testing.B) {
				ctx := context.Background()
				be, _, _ := newBackend(b)
				b.SetBytes(size)
				declared := size
				if !known {
					declared = -1
				}
				i := 0
				for b.Loop() {
					if err := be.Put(ctx, fmt.Sprintf("nar/%d.nar.zst", i), io.LimitReader(newRandReader(uint64(i)), size), declared); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}
