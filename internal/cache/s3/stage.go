package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/homelab-farm/farm/internal/cache"
)

// errAborted ends the upload of an aborted Staged.
var errAborted = errors.New("staged object aborted")

// cleanupTimeout bounds the removal of a temporary object by Abort, which
// takes no context.
const cleanupTimeout = 30 * time.Second

// staged holds the first smallObject bytes in memory. An object that ends
// there is stored by Commit with one PUT under its key. A larger one is
// streamed through a pipe into an upload of a temporary object under
// .staging/, which Commit copies to its key on the server and removes.
//
// Write is called by one goroutine; Commit and Abort may race with each
// other but not with Write.
type staged struct {
	b   *Backend
	ctx context.Context // Stage's context: the upload's and Abort's

	buf *[smallObject]byte // the first bytes; nil once released
	n   int                // bytes in buf

	// Set once the object outgrew buf and streams to tmp.
	tmp    string // object name of the temporary object
	pw     *io.PipeWriter
	cancel context.CancelFunc // cancels the upload
	done   chan struct{}      // closed when the upload has returned
	err    error              // the upload's result, once done is closed

	mu       sync.Mutex // serialises Commit and Abort
	finished bool       // Commit or Abort was called
	werr     error      // fails every Write once finished
}

// Stage starts an object whose key is given at Commit. Memory stays at
// 1 MiB plus two 16 MiB upload parts whatever the object's size. An upload
// lives as long as ctx: cancelling ctx fails the next Write and Commit.
// The caller must end every Staged with Commit or Abort.
//
// A process killed while staging leaves at most a temporary object under
// .staging/ (never listed at the root, never under a cache key) or an
// incomplete multipart upload, which S3 services expire (MinIO after 24 h;
// on AWS, set an AbortIncompleteMultipartUpload lifecycle rule).
func (b *Backend) Stage(ctx context.Context) (cache.Staged, error) {
	return &staged{b: b, ctx: ctx, buf: smallBufs.Get().(*[smallObject]byte)}, nil
}

func (s *staged) Write(p []byte) (int, error) {
	if s.werr != nil {
		return 0, s.werr
	}
	if s.pw == nil {
		if s.n+len(p) <= smallObject {
			s.n += copy(s.buf[s.n:], p)
			return len(p), nil
		}
		s.stream()
	}
	n, err := s.pw.Write(p)
	if err != nil {
		return n, fmt.Errorf("stage %s: %w", s.b.whereObject(s.tmp), err)
	}
	return n, nil
}

// stream starts the upload of the temporary object, beginning with what
// buf holds.
func (s *staged) stream() {
	pr, pw := io.Pipe()
	uctx, cancel := context.WithCancel(s.ctx)
	s.tmp = s.b.object(stagingDir + rand.Text())
	s.pw, s.cancel, s.done = pw, cancel, make(chan struct{})
	r := io.MultiReader(bytes.NewReader(s.buf[:s.n]), pr)
	go func() {
		defer close(s.done)
		s.err = s.b.putStream(uctx, s.tmp, r, "application/octet-stream")
		if s.err != nil {
			pr.CloseWithError(s.err) // fails the writer's next Write
		} else {
			pr.Close()
		}
	}()
}

// Commit stores the object under key. A small object goes up in one PUT.
// A streamed one is finished, then copied to key on the server (CopyObject
// up to 64 MiB, beyond that a multipart copy in 64 MiB parts, which also
// lifts CopyObject's 5 GiB limit), and the temporary object is removed.
// Nothing appears under key unless Commit returns nil.
func (s *staged) Commit(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return errors.New("commit of a staged object already committed or aborted")
	}
	s.finished = true
	s.werr = errors.New("write to a committed staged object")
	defer s.release()
	if err := checkKey(key); err != nil {
		s.abort()
		return err
	}

	if s.pw == nil {
		if err := s.ctx.Err(); err != nil { // as a streamed upload would
			return fmt.Errorf("commit %s: %w", s.b.where(key), err)
		}
		err := s.b.put(ctx, s.b.object(key), bytes.NewReader(s.buf[:s.n]), int64(s.n), contentType(key))
		if err != nil {
			return fmt.Errorf("commit %s: %w", s.b.where(key), err)
		}
		return nil
	}

	s.pw.Close() // the upload reads EOF and completes
	select {
	case <-s.done:
	case <-ctx.Done():
		s.cancel()
		<-s.done
		s.removeTmp()
		return fmt.Errorf("commit %s: %w", s.b.where(key), ctx.Err())
	}
	if s.err != nil {
		s.removeTmp()
		return fmt.Errorf("commit %s: upload: %w", s.b.where(key), s.err)
	}

	ctype := contentType(key)
	_, err := s.b.client.ComposeObject(ctx,
		minio.CopyDestOptions{
			Bucket:          s.b.cfg.bucket,
			Object:          s.b.object(key),
			ContentType:     ctype,
			ReplaceMetadata: true,
			// Carried into the multipart copy of large objects too.
			UserMetadata: map[string]string{"Content-Type": ctype},
			// Larger objects are copied in parts, so that no request
			// waits long for its response.
			PartSize:   copyPartSize,
			NumThreads: copyThreads,
		},
		minio.CopySrcOptions{Bucket: s.b.cfg.bucket, Object: s.tmp},
	)
	s.removeTmp()
	if err != nil {
		return fmt.Errorf("commit %s: copy: %w", s.b.where(key), err)
	}
	return nil
}

// Abort ends the upload and removes whatever it stored. After Commit it
// does nothing.
func (s *staged) Abort() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return nil
	}
	s.finished = true
	s.werr = errAborted
	defer s.release()
	return s.abort()
}

func (s *staged) abort() error {
	if s.pw == nil {
		return nil // nothing left this process
	}
	// Failing the pipe ends the upload; minio-go then aborts its multipart
	// upload on the server.
	s.pw.CloseWithError(errAborted)
	<-s.done
	if s.err == nil {
		return s.removeTmp()
	}
	return nil
}

// release returns buf to the pool once no upload reads it any more.
func (s *staged) release() {
	if s.cancel != nil {
		s.cancel()
	}
	if s.buf != nil {
		smallBufs.Put(s.buf)
		s.buf = nil
	}
}

// removeTmp removes the temporary object. A failure leaves garbage under
// .staging/, never a visible cache object, so callers that already have a
// result do not report it.
func (s *staged) removeTmp() error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), cleanupTimeout)
	defer cancel()
	err := s.b.client.RemoveObject(ctx, s.b.cfg.bucket, s.tmp, minio.RemoveObjectOptions{})
	if err != nil && !errors.Is(notFound(err), cache.ErrNotFound) {
		return fmt.Errorf("remove %s: %w", s.b.whereObject(s.tmp), err)
	}
	return nil
}
