package cache

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Compression is how NARs are compressed in the cache, named as narinfo
// files name it.
type Compression string

// The compressions a cache can use. Zstd is the default: it is several times
// faster than xz at a similar size.
const (
	Zstd Compression = "zstd"
	XZ   Compression = "xz"
	None Compression = "none"
)

// ParseCompression accepts "zstd", "xz" or "none" ("" means zstd).
func ParseCompression(s string) (Compression, error) {
	switch Compression(s) {
	case "", Zstd:
		return Zstd, nil
	case XZ, None:
		return Compression(s), nil
	}
	return "", fmt.Errorf("unknown compression %q (want zstd, xz or none)", s)
}

// Ext is the file extension of a NAR compressed this way.
func (c Compression) Ext() string {
	switch c {
	case Zstd:
		return ".nar.zst"
	case XZ:
		return ".nar.xz"
	}
	return ".nar"
}

// compressor wraps w so that what is written to it is compressed. threads is
// how many goroutines a large NAR may use.
func (c Compression) compressor(w io.Writer, threads int) (io.WriteCloser, error) {
	switch c {
	case Zstd:
		return newParallelZstd(w, threads), nil
	case XZ:
		return xz.NewWriter(w)
	case None:
		return nopWriteCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", c)
}

// decompressor reads what compressor wrote.
func (c Compression) decompressor(r io.Reader) (io.ReadCloser, error) {
	switch c {
	case Zstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case XZ:
		x, err := xz.NewReader(r)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(x), nil
	case None:
		return io.NopCloser(r), nil
	}
	return nil, fmt.Errorf("unknown compression %q", c)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
