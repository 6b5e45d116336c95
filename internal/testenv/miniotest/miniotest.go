package miniotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/ory/dockertest/v3"
	dc "github.com/ory/dockertest/v3/docker"

	"github.com/homelab-farm/farm/internal/testenv"
)

// Credentials of the MinIO root user (MinIO wants at least 3 and 8 characters).
const (
	accessKey = "farmtest"
	secretKey = "farmtest-secret-key"
	// Region is the region CacheURL names; MinIO answers to any.
	Region = "us-east-1"
	// Label marks every container this package starts.
	Label = "homelab-farm.miniotest"
)

const (
	readyTimeout = 60 * time.Second
	stopTimeout  = 10 * time.Second
)

// Server is one MinIO container.
type Server struct {
	pool      *dockertest.Pool
	res       *dockertest.Resource
	port      string
	dedicated bool
	client    *minio.Client
	watchdog  *watchdog

	mu      sync.Mutex
	stopped bool
}

var shared struct {
	once  sync.Once
	srv   *Server
	err   error
	ready atomic.Pointer[Server] // srv, once it runs
}

// Start returns the MinIO shared by every test of this test binary,
// starting it on first use. It skips the test (fails it when CI=true) when
// Docker or the MinIO binary is missing. Stop and Restart are refused on it.
func Start(t testing.TB) *Server {
	t.Helper()
	if s := shared.ready.Load(); s != nil {
		return s // Docker and MinIO are there: no need to ask again
	}
	testenv.Docker(t)
	bin := testenv.Tool(t, "minio")
	shared.once.Do(func() {
		shared.srv, shared.err = start(bin, false)
		shared.ready.Store(shared.srv)
	})
	if shared.err != nil {
		t.Fatalf("start shared MinIO: %v", shared.err)
	}
	return shared.srv
}

// StartDedicated starts a MinIO of the test's own, removed when the test
// ends. Use it to Stop and Restart MinIO.
func StartDedicated(t testing.TB) *Server {
	t.Helper()
	testenv.Docker(t)
	bin := testenv.Tool(t, "minio")
	s, err := start(bin, true)
	if err != nil {
		t.Fatalf("start MinIO: %v", err)
	}
	t.Cleanup(func() {
		if err := s.remove(); err != nil {
			t.Errorf("remove MinIO: %v", err)
		}
	})
	return s
}

// Main runs the tests of a package (m is the *testing.M, or a wrapper of
// its Run) and then removes the shared MinIO, if one was started. Call it
// from TestMain.
func Main(m interface{ Run() int }) {
	code := m.Run()
	if shared.srv != nil {
		if err := shared.srv.remove(); err != nil {
			fmt.Fprintf(os.Stderr, "miniotest: remove shared MinIO: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// Endpoint is the server's URL: http://127.0.0.1:PORT.
func (s *Server) Endpoint() string { return "http://127.0.0.1:" + s.port }

// AccessKey is the root user's access key.
func (s *Server) AccessKey() string { return accessKey }

// SecretKey is the root user's secret key.
func (s *Server) SecretKey() string { return secretKey }

// Client is a minio-go client with root credentials, for checking what a
// test stored.
func (s *Server) Client() *minio.Client { return s.client }

// Env is the environment that gives a process the root credentials, to be
// appended to a command's environment.
func (s *Server) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + accessKey, "AWS_SECRET_ACCESS_KEY=" + secretKey}
}

// Getenv is a getenv function that knows only the credentials of Env, so
// that nothing from the test's own environment leaks in.
func (s *Server) Getenv(key string) string {
	for _, kv := range s.Env() {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}

// CacheURL is the s3:// URL of bucket for internal/cache/s3.
func (s *Server) CacheURL(bucket string) string {
	return "s3://" + bucket + "?endpoint=" + s.Endpoint() + "&region=" + Region
}

var bucketSeq atomic.Int64

// NewBucket creates a bucket for the test alone, emptied and removed when
// the test ends.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := bucketName(t.Name(), bucketSeq.Add(1))
	ctx := context.Background()
	if err := s.client.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: Region}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
	t.Cleanup(func() {
		if s.isStopped() {
			return // a dedicated server, removed with its data
		}
		err := s.client.RemoveBucketWithOptions(ctx, name, minio.RemoveBucketOptions{ForceDelete: true})
		if err != nil {
			t.Errorf("remove bucket %s: %v", name, err)
		}
	})
	return name
}

var notBucketChars = regexp.MustCompile(`[^a-z0-9]+`)

// bucketName makes a valid, unique bucket name that still says which test
// it belongs to.
func bucketName(test string, seq int64) string {
	s := notBucketChars.ReplaceAllString(strings.ToLower(test), "-")
	s = strings.Trim(s, "-")
	if len(s) > 36 {
		s = strings.Trim(s[:36], "-")
	}
	var r [4]byte
	rand.Read(r[:])
	return fmt.Sprintf("t-%s-%d-%s", s, seq, hex.EncodeToString(r[:]))
}

// SetPublicRead lets anyone read (and list) bucket without credentials, so
// that the nix client can use Endpoint()/bucket as a substituter. Listing is
// granted so that a missing key answers 404, which Nix takes for "not in
// this cache", rather than 403.
func (s *Server) SetPublicRead(t testing.TB, bucket string) {
	t.Helper()
	policy := fmt.Sprintf(`{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::%[1]s/*"]},
    {"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": ["arn:aws:s3:::%[1]s"]}
  ]
}`, bucket)
	if err := s.client.SetBucketPolicy(context.Background(), bucket, policy); err != nil {
		t.Fatalf("set public-read policy on %s: %v", bucket, err)
	}
}

// Stop stops the container, keeping its data and port, as if MinIO had
// crashed or been shut down. Only for StartDedicated servers.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.mustBeDedicated(t, "Stop")
	if err := s.stop(); err != nil {
		t.Fatalf("stop MinIO: %v", err)
	}
}

// Restart starts the container again (stopping it first if it runs) on
// the same port with the same data, and waits until MinIO is ready. Only
// for StartDedicated servers.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.mustBeDedicated(t, "Restart")
	if !s.isStopped() {
		if err := s.stop(); err != nil {
			t.Fatalf("stop MinIO: %v", err)
		}
	}
	if err := s.pool.Client.StartContainer(s.res.Container.ID, nil); err != nil {
		t.Fatalf("start MinIO again on port %s: %v", s.port, err)
	}
	s.mu.Lock()
	s.stopped = false
	s.mu.Unlock()
	if err := s.waitReady(); err != nil {
		t.Fatalf("restarted MinIO: %v", err)
	}
}

func (s *Server) mustBeDedicated(t testing.TB, what string) {
	t.Helper()
	if !s.dedicated {
		t.Fatalf("miniotest: %s of the shared server would break other tests: use StartDedicated", what)
	}
}

func (s *Server) isStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

func (s *Server) stop() error {
	id := s.res.Container.ID
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := s.pool.Client.KillContainer(dc.KillContainerOptions{ID: id, Signal: dc.SIGTERM}); err != nil {
		return err
	}
	if _, err := s.pool.Client.WaitContainerWithContext(id, ctx); err != nil {
		// MinIO did not exit on SIGTERM in time.
		if err := s.pool.Client.KillContainer(dc.KillContainerOptions{ID: id}); err != nil {
			return err
		}
		if _, err := s.pool.Client.WaitContainer(id); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	return nil
}

// remove removes the container and its data, then ends its watchdog.
func (s *Server) remove() error {
	err := s.pool.Purge(s.res)
	s.watchdog.release()
	return err
}

// start builds the image if needed and runs a container of it.
func start(bin string, dedicated bool) (*Server, error) {
	pool, err := dockertest.NewPool("")
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	image, err := buildImage(pool, bin)
	if err != nil {
		return nil, err
	}
	// The port is chosen here, not by Docker, so that it survives a stop:
	// Docker would pick a new one for a published port left to it. Another
	// process may take it between the pick and the run; then try again.
	var (
		res  *dockertest.Resource
		port string
		wd   *watchdog
	)
	for attempt := 0; ; attempt++ {
		if port, err = freePort(); err != nil {
			return nil, err
		}
		name := fmt.Sprintf("homelab-farm-minio-%d-%s", os.Getpid(), randHex(4))
		// Watched before it exists: if this process dies while Docker
		// creates it, the watchdog still removes it by name.
		if wd, err = startWatchdog(name); err != nil {
			return nil, err
		}
		res, err = pool.RunWithOptions(&dockertest.RunOptions{
			Name:         name,
			Repository:   image.repo,
			Tag:          image.tag,
			Cmd:          []string{"server", "/data", "--address", ":9000", "--quiet"},
			Env:          []string{"MINIO_ROOT_USER=" + accessKey, "MINIO_ROOT_PASSWORD=" + secretKey, "MINIO_BROWSER=off", "MINIO_UPDATE=off"},
			ExposedPorts: []string{"9000/tcp"},
			PortBindings: map[dc.Port][]dc.PortBinding{
				"9000/tcp": {{HostIP: "127.0.0.1", HostPort: port}},
			},
			Labels: map[string]string{Label: strconv.Itoa(os.Getpid())},
		}, func(hc *dc.HostConfig) {
			hc.PublishAllPorts = false // only 9000, only on 127.0.0.1
			hc.AutoRemove = false      // Stop keeps the container
			hc.RestartPolicy = dc.RestartPolicy{Name: "no"}
		})
		if err == nil {
			break
		}
		_ = pool.RemoveContainerByName(name)
		wd.release()
		if attempt == 4 || !portTaken(err) {
			return nil, fmt.Errorf("run MinIO container: %w", err)
		}
	}
	client, err := minio.New("127.0.0.1:"+port, &minio.Options{
		Creds:        credentials.NewStaticV4(accessKey, secretKey, ""),
		Region:       Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		pool.Purge(res)
		wd.release()
		return nil, err
	}
	s := &Server{pool: pool, res: res, port: port, dedicated: dedicated, client: client, watchdog: wd}
	if err := s.waitReady(); err != nil {
		s.remove()
		return nil, err
	}
	return s, nil
}

// portTaken reports whether Docker failed to publish the chosen port.
func portTaken(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "address already in use") || strings.Contains(msg, "port is already allocated")
}

// freePort asks the kernel for a free port on 127.0.0.1.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

// waitReady polls MinIO's readiness probe; it fails early if the container
// exits.
func (s *Server) waitReady() error {
	url := s.Endpoint() + "/minio/health/ready"
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	for {
		resp, err := hc.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		c, ierr := s.pool.Client.InspectContainer(s.res.Container.ID)
		if ierr == nil && !c.State.Running {
			return fmt.Errorf("MinIO container exited (code %d): %s", c.State.ExitCode, s.logs())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("MinIO not ready on %s after %s: %v", s.Endpoint(), readyTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logs returns the tail of the container's output, for errors.
func (s *Server) logs() string {
	var b strings.Builder
	_ = s.pool.Client.Logs(dc.LogsOptions{
		Container: s.res.Container.ID, OutputStream: &b, ErrorStream: &b,
		Stdout: true, Stderr: true, Tail: "20",
	})
	return strings.TrimSpace(b.String())
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
