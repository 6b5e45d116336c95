package cache

import (
	"io"
	"sync"
)

// bufPipe is an in-memory pipe with a fixed-size ring buffer: the writer
// (compression) runs ahead of the reader (an upload that sends in parts) by
// up to the buffer's size, so that neither waits for the other as long as
// both keep pace. Memory is bounded by the buffer.
type bufPipe struct {
	mu      sync.Mutex
	cond    *sync.Cond
	buf     []byte
	r, n    int   // read offset and bytes buffered
	werr    error // set by CloseWithError on the write side: io.EOF or the error
	rclosed error // set when the reader gives up
}

func newBufPipe(size int) *bufPipe {
	p := &bufPipe{buf: make([]byte, size)}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *bufPipe) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	written := 0
	for len(b) > 0 {
		for p.n == len(p.buf) && p.rclosed == nil {
			p.cond.Wait()
		}
		if p.rclosed != nil {
			return written, p.rclosed
		}
		if p.werr != nil {
			return written, io.ErrClosedPipe
		}
		w := (p.r + p.n) % len(p.buf)
		end := len(p.buf)
		if w < p.r {
			end = p.r
		}
		k := copy(p.buf[w:end], b)
		p.n += k
		b = b[k:]
		written += k
		p.cond.Broadcast()
	}
	return written, nil
}

// CloseWrite ends the stream: the reader gets err after the buffered bytes,
// or io.EOF when err is nil.
func (p *bufPipe) CloseWrite(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		err = io.EOF
	}
	if p.werr == nil {
		p.werr = err
	}
	p.cond.Broadcast()
}

// CloseRead makes further writes fail with err (the reader stopped).
func (p *bufPipe) CloseRead(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		err = io.ErrClosedPipe
	}
	if p.rclosed == nil {
		p.rclosed = err
	}
	p.cond.Broadcast()
}

func (p *bufPipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.n == 0 && p.werr == nil {
		p.cond.Wait()
	}
	if p.n == 0 {
		return 0, p.werr
	}
	end := min(p.r+p.n, len(p.buf))
	k := copy(b, p.buf[p.r:end])
	p.r = (p.r + k) % len(p.buf)
	p.n -= k
	p.cond.Broadcast()
	return k, nil
}
