package cache_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/cache/file"
	"github.com/homelab-farm/farm/internal/testenv"
)

// nastyKeys are keys a stranger can ask the cache for, as they stand in
// the URL under /nix-cache/ (escaped) and as the handler sees them.
var nastyKeys = []struct{ url, key string }{
	{"nar/a%5cb", `nar/a\b`},
	{"log/%00", "log/\x00"},
	{"nar/a%00b.nar", "nar/a\x00b.nar"},
	{"nar/a%0ab", "nar/a\nb"},
	{"nar/a%20b", "nar/a b"},
	{"nar/a%7fb", "nar/a\x7fb"},
	{"nar/%c3%a9", "nar/é"},
	{"nar/%2e%2e%2fx", "nar/../x"},
	{"nar/.tmp-1234", "nar/.tmp-1234"},
	{"nar/" + strings.Repeat("a", 300), "nar/" + strings.Repeat("a", 300)},
	{"log/" + strings.Repeat("b", 256) + ".drv", "log/" + strings.Repeat("b", 256) + ".drv"},
	{"%5c.narinfo", `\.narinfo`},
}

// ioErrorBackend fails every call as a broken disk or S3 outage would.
type ioErrorBackend struct{ cache.Backend }

func (ioErrorBackend) Stat(context.Context, string) (int64, error) { return 0, syscall.EIO }
func (ioErrorBackend) Get(context.Context, string) (io.ReadCloser, error) {
	return nil, syscall.EIO
}

// TestHandlerNastyKeys: a key no object can have is 404, whatever the
// backend says, and over the file backend too; a real outage stays 502.
func TestHandlerNastyKeys(t *testing.T) {
	fb, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, backend := range []struct {
		name string
		b    cache.Backend
	}{{"file", fb}, {"failing", ioErrorBackend{}}} {
		t.Run(backend.name, func(t *testing.T) {
			srv := httptest.NewServer(http.StripPrefix("/nix-cache", cache.NewHandler(backend.b)))
			defer srv.Close()
			for _, k := range nastyKeys {
				for _, method := range []string{http.MethodGet, http.MethodHead} {
					req, _ := http.NewRequest(method, srv.URL+"/nix-cache/"+k.url, nil)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusNotFound {
						t.Errorf("%s /nix-cache/%s: %d, want 404", method, k.url, resp.StatusCode)
					}
				}
			}
		})
	}
	srv := httptest.NewServer(http.StripPrefix("/nix-cache", cache.NewHandler(ioErrorBackend{})))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/nix-cache/nar/abcd.nar.zst")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("valid key on a failing backend: %d, want 502", resp.StatusCode)
	}
}

func TestCheckKey(t *testing.T) {
	for _, k := range nastyKeys {
		if err := cache.CheckKey(k.key); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("CheckKey(%q) = %v, want ErrNotFound", k.key, err)
		}
	}
	for _, key := range []string{"", "/nar/x", "nar/", "nar//x", ".", "..", "../x", "nar/./x"} {
		if err := cache.CheckKey(key); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("CheckKey(%q) = %v, want ErrNotFound", key, err)
		}
	}
	for _, key := range []string{"nix-cache-info", "0123abcd.narinfo", "nar/1abc.nar.zst", "log/abc-hello-1.0+x_y?=z.drv", "realisations/sha256:ab!out.doi"} {
		if err := cache.CheckKey(key); err != nil {
			t.Errorf("CheckKey(%q) = %v, want nil", key, err)
		}
	}
}

// slowBackend serves one object of size bytes from memory.
type slowBackend struct {
	cache.Backend
	body []byte
}

func (s slowBackend) Stat(context.Context, string) (int64, error) { return int64(len(s.body)), nil }
func (s slowBackend) Get(context.Context, string) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(s.body)), nil
}

// TestHandlerSlowDownloads: with a server write timeout of 1.5 s and a
// stall timeout of 1 s (wide enough for a loaded machine's scheduling), a
// client that reads steadily for longer than the write timeout gets every
// byte, and one that stops reading is cut.
func TestHandlerSlowDownloads(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	h := http.StripPrefix("/nix-cache", cache.NewHandlerWith(slowBackend{body: body}, cache.HandlerOptions{StallTimeout: time.Second}))
	const writeTimeout = 1500 * time.Millisecond
	srv := testenv.SmallBufferServer(t, h, writeTimeout)
	addr := srv.Listener.Addr().String()
	get := "GET /nix-cache/nar/abcd.nar HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

	t.Run("steady", func(t *testing.T) {
		c := testenv.DialSmall(t, addr)
		if _, err := io.WriteString(c, get); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var got bytes.Buffer
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				break
			}
			time.Sleep(10 * time.Millisecond) // 1 MiB in a few seconds: slow but steady
		}
		took := time.Since(start)
		_, payload, _ := bytes.Cut(got.Bytes(), []byte("\r\n\r\n"))
		if !bytes.Equal(payload, body) {
			t.Fatalf("got %d bytes of %d after %s", len(payload), len(body), took)
		}
		if took < writeTimeout {
			t.Fatalf("download took %s, not longer than the write timeout: the test proves nothing", took)
		}
	})
	t.Run("stopped", func(t *testing.T) {
		c := testenv.DialSmall(t, addr)
		if _, err := io.WriteString(c, get); err != nil {
			t.Fatal(err)
		}
		head := make([]byte, 1024)
		if _, err := io.ReadFull(c, head); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // stop reading: the server must give up on us
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _ := io.Copy(io.Discard, c) // what was in the socket buffers, then the cut
		if int(n)+len(head) >= len(body) {
			t.Errorf("a client that stopped reading got the whole object (%d bytes)", int(n)+len(head))
		}
	})
}
