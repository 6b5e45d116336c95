package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/homelab-farm/farm/internal/cache"
)

// Errors from Open that a caller may want to tell apart.
var (
	// ErrNoSuchBucket is returned by Open when the bucket does not exist.
	ErrNoSuchBucket = errors.New("bucket does not exist")
	// ErrAccessDenied is returned by Open when the service refuses the
	// credentials (unknown key, wrong secret, or no permission to list).
	ErrAccessDenied = errors.New("access denied")
)

const (
	// partSize is the multipart part size for uploads of unknown size, and
	// streamThreads how many parts of one upload are in flight. They bound
	// memory: minio-go buffers streamThreads parts per upload. 16 MiB parts
	// allow objects up to 156 GiB (10,000 parts). A second part in flight
	// made streamed uploads to MinIO on loopback 25-45% faster; a third
	// added nothing.
	partSize      = 16 << 20
	streamThreads = 2
	// maxParts is S3's limit on the number of parts in an upload.
	maxParts = 10_000
	// smallObject is how much of an upload of unknown size (Put with size
	// -1) is held in memory before deciding: an object that ends within it
	// goes up in one PUT under its key.
	smallObject = 1 << 20

	// Timeouts that make a dead endpoint fail within seconds. minio-go
	// tries every request up to maxRetries times, with a backoff of at most
	// 1 s between tries; a refused connection fails each try at once, a host
	// that does not answer fails each try after dialTimeout. A server that
	// accepts connections but never answers fails each try after
	// responseHeaderTimeout, which is sized for the slowest legitimate
	// request: a 16 MiB part stored or a 64 MiB part copied.
	dialTimeout           = 3 * time.Second
	tlsHandshakeTimeout   = 5 * time.Second
	responseHeaderTimeout = 15 * time.Second
	maxRetries            = 4
)

// Backend is a cache.Backend in an S3 bucket. It is safe for concurrent use.
type Backend struct {
	client *minio.Client
	cfg    config
	name   string // cfg.String()
}

var (
	_ cache.Backend      = (*Backend)(nil)
	_ cache.BatchDeleter = (*Backend)(nil)
)

// Open connects to the bucket u names and checks that it exists and that the
// credentials may list it.
//
// The URL is s3://bucket[/prefix] with optional query parameters:
//
//	endpoint=URL            http://host:port or https://host:port (default https://s3.amazonaws.com);
//	                        a bare host:port takes its scheme from scheme= (default https)
//	region=NAME             the bucket's region (default: asked of the service)
//	prefix=PATH             keep the cache under PATH/ inside the bucket
//	profile=NAME            profile in the shared credentials file
//	access-key-file=FILE    files holding the access key id and secret key
//	secret-key-file=FILE
//	session-token-file=FILE
//
// Without key files in the URL, getenv supplies the credentials:
// AWS_ACCESS_KEY_ID_FILE and AWS_SECRET_ACCESS_KEY_FILE (and
// AWS_SESSION_TOKEN_FILE) name files; else AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) hold them; else the shared
// credentials file (AWS_SHARED_CREDENTIALS_FILE or $HOME/.aws/credentials,
// AWS_PROFILE); else requests are anonymous.
//
// Errors name the bucket and the source of the credentials, never a secret.
// They wrap ErrNoSuchBucket for a missing bucket and ErrAccessDenied for
// refused credentials.
func Open(ctx context.Context, u *url.URL, getenv func(string) string) (*Backend, error) {
	cfg, err := parseURL(u)
	if err != nil {
		return nil, fmt.Errorf("s3 cache URL: %w", err)
	}
	b, cr, err := newBackend(cfg, getenv)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", cfg, err)
	}
	if err := b.check(ctx, cr); err != nil {
		return nil, fmt.Errorf("open %s: %w", b.name, err)
	}
	return b, nil
}

func newBackend(cfg config, getenv func(string) string) (*Backend, creds, error) {
	cr, err := resolveCreds(cfg, getenv)
	if err != nil {
		return nil, creds{}, err
	}
	tr, err := minio.DefaultTransport(cfg.secure)
	if err != nil {
		return nil, creds{}, err
	}
	tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = tlsHandshakeTimeout
	tr.ResponseHeaderTimeout = responseHeaderTimeout
	tr.MaxIdleConnsPerHost = 64
	client, err := minio.New(cfg.host, &minio.Options{
		Creds:        cr.provider,
		Secure:       cfg.secure,
		Transport:    tr,
		Region:       cfg.region,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   maxRetries,
	})
	if err != nil {
		return nil, creds{}, err
	}
	return &Backend{client: client, cfg: cfg, name: cfg.String()}, cr, nil
}

// check lists at most one key: it fails on a missing bucket, on refused
// credentials and on an endpoint that does not answer.
func (b *Backend) check(ctx context.Context, cr creds) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	no := false
	for obj := range b.client.ListObjectsIter(ctx, b.cfg.bucket, minio.ListObjectsOptions{
		Prefix: b.cfg.prefix, MaxKeys: 1, FetchOwner: &no,
	}) {
		if obj.Err == nil {
			break
		}
		var er minio.ErrorResponse
		if errors.As(obj.Err, &er) {
			switch er.Code {
			case "NoSuchBucket":
				return ErrNoSuchBucket
			case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
				"InvalidToken", "ExpiredToken", "InvalidSecurity", "AllAccessDisabled":
				if cr.source == "" {
					return fmt.Errorf("no credentials found (AWS_ACCESS_KEY_ID, AWS_ACCESS_KEY_ID_FILE, "+
						"~/.aws/credentials) and anonymous access refused (%s): %w", er.Code, ErrAccessDenied)
				}
				return fmt.Errorf("credentials from %s refused (%s): %w", cr.source, er.Code, ErrAccessDenied)
			}
		}
		return obj.Err
	}
	return nil
}

// String names the backend: its URL without credentials.
func (b *Backend) String() string { return b.name }

// object is the object name of a cache key.
func (b *Backend) object(key string) string { return b.cfg.prefix + key }

// where names a key in messages: s3://bucket/prefix/key.
func (b *Backend) where(key string) string { return b.whereObject(b.object(key)) }

// whereObject names an object in messages.
func (b *Backend) whereObject(name string) string { return "s3://" + b.cfg.bucket + "/" + name }

// Put stores r under key. With size -1 the object goes up in 16 MiB parts,
// so memory stays bounded whatever its length.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := b.put(ctx, b.object(key), r, size, cache.ContentType(key)); err != nil {
		return fmt.Errorf("put %s: %w", b.where(key), err)
	}
	return nil
}

// smallBufs recycles the buffers that hold the start of an upload of
// unknown size, to find out whether it is small.
var smallBufs = sync.Pool{New: func() any { return new([smallObject]byte) }}

// put stores r under the object name. With size -1, an object that ends
// within smallObject goes up in one PUT (one request instead of three, and
// retryable by minio-go), a larger one in parts.
func (b *Backend) put(ctx context.Context, name string, r io.Reader, size int64, ctype string) error {
	if size < 0 {
		buf := smallBufs.Get().(*[smallObject]byte)
		defer smallBufs.Put(buf)
		n, err := io.ReadFull(r, buf[:])
		switch err {
		case io.EOF, io.ErrUnexpectedEOF:
			r, size = bytes.NewReader(buf[:n]), int64(n)
		case nil:
			return b.putStream(ctx, name, io.MultiReader(bytes.NewReader(buf[:n]), r), ctype)
		default:
			return fmt.Errorf("read: %w", err)
		}
	}
	opts := minio.PutObjectOptions{ContentType: ctype, PartSize: partSize}
	if size > partSize*maxParts {
		opts.PartSize = 0 // minio-go picks parts large enough
	}
	_, err := b.client.PutObject(ctx, b.cfg.bucket, name, r, size, opts)
	return err
}

// putStream stores r, of unknown size, in parts of partSize: minio-go
// buffers streamThreads parts, whatever the object's size.
func (b *Backend) putStream(ctx context.Context, name string, r io.Reader, ctype string) error {
	_, err := b.client.PutObject(ctx, b.cfg.bucket, name, r, -1, minio.PutObjectOptions{
		ContentType: ctype,
		PartSize:    partSize,
		// Read the next part while the last one uploads.
		ConcurrentStreamParts: true,
		NumThreads:            streamThreads,
	})
	return err
}

// Get opens the object under key. A missing key gives an error wrapping
// cache.ErrNotFound.
func (b *Backend) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	rc, _, _, err := minio.Core{Client: b.client}.GetObject(ctx, b.cfg.bucket, b.object(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", b.where(key), notFound(err))
	}
	return rc, nil
}

// Stat returns the size of the object under key. A missing key gives an
// error wrapping cache.ErrNotFound.
func (b *Backend) Stat(ctx context.Context, key string) (int64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	info, err := b.client.StatObject(ctx, b.cfg.bucket, b.object(key), minio.StatObjectOptions{})
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", b.where(key), notFound(err))
	}
	return info.Size, nil
}

// List calls fn for every object directly inside dir, paging through any
// number of them (1,000 per request).
func (b *Backend) List(ctx context.Context, dir string, fn func(cache.Object) error) error {
	if dir != "" && !strings.HasSuffix(dir, "/") {
		dir += "/"
	}
	ctx, cancel := context.WithCancel(ctx) // stops the listing when fn fails
	defer cancel()
	no := false
	prefix := b.object(dir)
	for obj := range b.client.ListObjectsIter(ctx, b.cfg.bucket, minio.ListObjectsOptions{
		Prefix: prefix, FetchOwner: &no,
	}) {
		if obj.Err != nil {
			return fmt.Errorf("list %s: %w", b.where(dir), obj.Err)
		}
		if strings.HasSuffix(obj.Key, "/") {
			continue // a common prefix: a "directory" further down
		}
		if err := fn(cache.Object{Key: strings.TrimPrefix(obj.Key, b.cfg.prefix), Size: obj.Size, ModTime: obj.LastModified, ETag: obj.ETag}); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes the object under key. Deleting an absent key succeeds.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	err := b.client.RemoveObject(ctx, b.cfg.bucket, b.object(key), minio.RemoveObjectOptions{})
	if err != nil && !errors.Is(notFound(err), cache.ErrNotFound) {
		return fmt.Errorf("delete %s: %w", b.where(key), err)
	}
	return nil
}

// DeleteMany removes the objects under keys with S3's multi-object delete
// (minio-go sends 1,000 keys per request). Absent keys are not an error.
func (b *Backend) DeleteMany(ctx context.Context, keys []string) error {
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx) // stops the sender on an early return
	defer cancel()
	objects := make(chan minio.ObjectInfo)
	go func() {
		defer close(objects)
		for _, k := range keys {
			select {
			case objects <- minio.ObjectInfo{Key: b.object(k)}:
			case <-ctx.Done():
				return
			}
		}
	}()
	var failed []error
	for res := range b.client.RemoveObjectsWithResult(ctx, b.cfg.bucket, objects, minio.RemoveObjectsOptions{}) {
		if res.Err != nil && !errors.Is(notFound(res.Err), cache.ErrNotFound) {
			failed = append(failed, fmt.Errorf("delete %s: %w", b.whereObject(res.ObjectName), res.Err))
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(failed...)
}

// notFound turns minio-go's "no such key" into cache.ErrNotFound.
func notFound(err error) error {
	var er minio.ErrorResponse
	if errors.As(err, &er) && (er.Code == "NoSuchKey" ||
		er.StatusCode == http.StatusNotFound && er.Code != "NoSuchBucket") {
		return cache.ErrNotFound
	}
	return err
}

// checkKey refuses keys that cannot name an object of the cache: empty,
// or not in clean slash-separated form ("..", "//", a leading or trailing
// "/").
func checkKey(key string) error {
	if key == "" || path.Clean("/"+key) != "/"+key || strings.Contains(key, "\\") {
		return fmt.Errorf("invalid cache key %q", key)
	}
	return nil
}
