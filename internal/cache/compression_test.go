package cache

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
)

func TestCompressionRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 1000, pzstdChunk - 1, pzstdChunk, pzstdChunk + 1, 3*pzstdChunk + 5}
	for _, comp := range []Compression{Zstd, XZ, None} {
		for _, size := range sizes {
			if comp == XZ && size > pzstdChunk {
				continue // slow and no different
			}
			in := make([]byte, size)
			_, _ = rand.Read(in[:size/2]) // half random, half zeros
			var out bytes.Buffer
			w, err := comp.compressor(&out, 2)
			if err != nil {
				t.Fatal(err)
			}
			// Write in odd pieces to cross chunk boundaries.
			for rest := in; len(rest) > 0; {
				k := min(len(rest), 777_777)
				if _, err := w.Write(rest[:k]); err != nil {
					t.Fatalf("%s/%d: Write: %v", comp, size, err)
				}
				rest = rest[k:]
			}
			if err := w.Close(); err != nil {
				t.Fatalf("%s/%d: Close: %v", comp, size, err)
			}
			r, err := comp.decompressor(&out)
			if err != nil {
				t.Fatalf("%s/%d: decompressor: %v", comp, size, err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("%s/%d: decompress: %v", comp, size, err)
			}
			if !bytes.Equal(got, in) {
				t.Errorf("%s/%d: round trip gave %d bytes, want the %d written", comp, size, len(got), len(in))
			}
		}
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestParallelZstdWriteError(t *testing.T) {
	boom := errors.New("disk full")
	w := newParallelZstd(failWriter{boom}, 2)
	data := make([]byte, 5*pzstdChunk)
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		_, err = w.Write(data)
	}
	if cerr := w.Close(); !errors.Is(cerr, boom) {
		t.Errorf("Close = %v, want %v", cerr, boom)
	}
	if err != nil && !errors.Is(err, boom) {
		t.Errorf("Write = %v, want %v or nil", err, boom)
	}
}
