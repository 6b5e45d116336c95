package s3

import (
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

// staged streams its bytes through a pipe into an upload of a temporary
// object under .staging/; Commit copies that object to its key on the
// server side and removes it.
type staged struct {
	b      *Backend
	tmp    string          // object name of the temporary object
	ctx    context.Context // Stage's context, for Abort's clean-up
	pw     *io.PipeWriter
	cancel context.CancelFunc // cancels the upload
	done   chan struct{}      // closed when the upload has returned
	err    error              // the upload's result, once done is closed

	mu       sync.Mutex // serialises Commit and Abort
	finished bool       // Commit or Abort was called
}

// Stage starts an upload of unknown length to a temporary object. Its
// memory stays at one 16 MiB part whatever the object's size. The upload
// lives as long as ctx: cancelling ctx fails the next Write and Commit.
// The caller must end every Staged with Commit or Abort.
//
// A process killed while staging leaves at most a temporary object under
// .staging/ (never listed at the root, never under a cache key) or an
// incomplete multipart upload, which S3 services expire (MinIO after 24 h;
// on AWS, set an AbortIncompleteMultipartUpload lifecycle rule).
func (b *Backend) Stage(ctx context.Context) (cache.Staged, error) {
	pr, pw := io.Pipe()
	uctx, cancel := context.WithCancel(ctx)
	s := &staged{
		b:      b,
		tmp:    b.object(stagingDir + rand.Text()),
		ctx:    ctx,
		pw:     pw,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		s.err = b.put(uctx, s.tmp, pr, -1, "application/octet-stream")
		if s.err != nil {
			pr.CloseWithError(s.err) // fails the writer's next Write
		} else {
			pr.Close()
		}
	}()
	return s, nil
}

func (s *staged) Write(p []byte) (int, error) {
	n, err := s.pw.Write(p)
	if err != nil {
		return n, fmt.Errorf("stage %s: %w", s.b.whereObject(s.tmp), err)
	}
	return n, nil
}

// Commit finishes the upload and copies the temporary object to key with a
// server-side copy (CopyObject up to 64 MiB, beyond that a multipart copy in
// 64 MiB parts, which also lifts CopyObject's 5 GiB limit), then removes the
// temporary object. Nothing appears under key unless Commit returns nil.
func (s *staged) Commit(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return errors.New("commit of a staged object already committed or aborted")
	}
	s.finished = true
	defer s.cancel()
	if err := checkKey(key); err != nil {
		s.abort()
		return err
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
			// Carried into the multipart copy of objects over 5 GiB too.
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
	return s.abort()
}

func (s *staged) abort() error {
	// Failing the pipe (rather than cancelling the upload's context) lets
	// minio-go abort its multipart upload on the server.
	s.pw.CloseWithError(errAborted)
	<-s.done
	s.cancel()
	if s.err == nil {
		return s.removeTmp()
	}
	return nil
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
