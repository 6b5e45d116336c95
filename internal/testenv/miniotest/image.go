package miniotest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/ory/dockertest/v3"
	dc "github.com/ory/dockertest/v3/docker"
)

// imageRepo is the repository of the locally built images.
const imageRepo = "homelab-farm/minio"

const dockerfile = `FROM scratch
COPY minio /minio
ENTRYPOINT ["/minio"]
`

type image struct{ repo, tag string }

func (i image) String() string { return i.repo + ":" + i.tag }

// buildImage makes sure the image of bin exists, building it if not. Its
// tag is the binary's hash, so a new MinIO gets a new image. A file lock
// makes parallel test binaries build it once; Docker would cope with
// concurrent builds, but this saves the time.
func buildImage(pool *dockertest.Pool, bin string) (image, error) {
	sum, err := fileHash(bin)
	if err != nil {
		return image{}, fmt.Errorf("hash MinIO binary: %w", err)
	}
	img := image{repo: imageRepo, tag: sum[:16]}
	if _, err := pool.Client.InspectImage(img.String()); err == nil {
		return img, nil
	}

	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "homelab-farm-miniotest-image.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return image{}, fmt.Errorf("image build lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return image{}, fmt.Errorf("image build lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := pool.Client.InspectImage(img.String()); err == nil {
		return img, nil // built by another process meanwhile
	}

	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeContext(pw, bin)) }()
	var out bytes.Buffer
	err = pool.Client.BuildImage(dc.BuildImageOptions{
		Name:           img.String(),
		InputStream:    pr,
		OutputStream:   &out,
		RmTmpContainer: true,
		Labels:         map[string]string{Label: "image"},
	})
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return image{}, fmt.Errorf("build image %s: %w\n%s", img, err, out.String())
	}
	return img, nil
}

// writeContext writes the build context, a tar of the Dockerfile and the
// binary, streaming the binary from disk.
func writeContext(w io.Writer, bin string) error {
	f, err := os.Open(bin)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile))}); err != nil {
		return err
	}
	if _, err := io.WriteString(tw, dockerfile); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "minio", Mode: 0o755, Size: fi.Size()}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, f); err != nil {
		return err
	}
	return tw.Close()
}

func fileHash(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
