package cache

import (
	"errors"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// pzstdChunk is how much input each independent zstd frame holds. Frames are
// compressed in parallel and written in order; zstd decoders (Nix's
// included) read concatenated frames as one stream. 4 MiB chunks cost under
// 1% of compressed size against one frame.
const pzstdChunk = 4 << 20

// zstdLevel is the level of every NAR compressed with zstd: the fastest,
// whose output is within 10% of zstd -3 at well under half the CPU time.
const zstdLevel = zstd.SpeedFastest

// parallelZstd compresses a stream as independent frames on all CPUs, with
// memory bounded by (threads+2) chunks in flight.
type parallelZstd struct {
	w       io.Writer
	enc     *zstd.Encoder
	buf     []byte
	order   chan *pzJob
	sem     chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	err     error
	closed  bool
	bufPool *sync.Pool
}

type pzJob struct {
	in, out []byte
	ready   chan struct{}
}

var pzEncoders sync.Map // threads -> *zstd.Encoder (EncodeAll is safe for concurrent use)

func sharedEncoder(threads int) *zstd.Encoder {
	if e, ok := pzEncoders.Load(threads); ok {
		return e.(*zstd.Encoder)
	}
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstdLevel),
		zstd.WithEncoderConcurrency(threads), zstd.WithWindowSize(pzstdChunk),
		zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false))
	if err != nil {
		panic(err) // only for invalid options, which are constant here
	}
	actual, _ := pzEncoders.LoadOrStore(threads, e)
	return actual.(*zstd.Encoder)
}

var pzBufs = sync.Pool{New: func() any { b := make([]byte, 0, pzstdChunk); return &b }}

func newParallelZstd(w io.Writer, threads int) *parallelZstd {
	if threads < 1 {
		threads = runtime.GOMAXPROCS(0)
	}
	z := &parallelZstd{
		w:       w,
		enc:     sharedEncoder(threads),
		order:   make(chan *pzJob, threads+1),
		sem:     make(chan struct{}, threads),
		done:    make(chan struct{}),
		bufPool: &pzBufs,
	}
	go z.writeLoop()
	return z
}

func (z *parallelZstd) getBuf() []byte { return (*z.bufPool.Get().(*[]byte))[:0] }
func (z *parallelZstd) putBuf(b []byte) {
	if cap(b) >= pzstdChunk && cap(b) <= 2*pzstdChunk {
		b = b[:0]
		z.bufPool.Put(&b)
	}
}

func (z *parallelZstd) failed() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.err
}

func (z *parallelZstd) Write(p []byte) (int, error) {
	if err := z.failed(); err != nil {
		return 0, err
	}
	if z.closed {
		return 0, errors.New("write to closed compressor")
	}
	n := len(p)
	for len(p) > 0 {
		if z.buf == nil {
			z.buf = z.getBuf()
		}
		k := min(len(p), pzstdChunk-len(z.buf))
		z.buf = append(z.buf, p[:k]...)
		p = p[k:]
		if len(z.buf) == pzstdChunk {
			z.submit()
		}
	}
	return n, nil
}

// submit compresses the current chunk on a worker and queues it for writing.
func (z *parallelZstd) submit() {
	job := &pzJob{in: z.buf, ready: make(chan struct{})}
	z.buf = nil
	z.order <- job // blocks while threads+1 chunks wait to be written
	z.sem <- struct{}{}
	go func() {
		defer func() { <-z.sem }()
		job.out = z.enc.EncodeAll(job.in, z.getBuf())
		close(job.ready)
	}()
}

func (z *parallelZstd) writeLoop() {
	defer close(z.done)
	for job := range z.order {
		<-job.ready
		if z.failed() == nil {
			if _, err := z.w.Write(job.out); err != nil {
				z.mu.Lock()
				z.err = err
				z.mu.Unlock()
			}
		}
		z.putBuf(job.in)
		z.putBuf(job.out)
	}
}

// Close compresses what is left, waits for every frame to be written and
// returns the first write error.
func (z *parallelZstd) Close() error {
	if z.closed {
		return z.failed()
	}
	z.closed = true
	if len(z.buf) > 0 {
		z.submit()
	} else if z.buf != nil {
		z.putBuf(z.buf)
		z.buf = nil
	}
	close(z.order)
	<-z.done
	return z.failed()
}
