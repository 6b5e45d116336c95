package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// maxBody bounds what one request may carry.
const maxBody = 1 << 20

// topicPath is an ntfy publish path: one segment of topic characters.
var topicPath = regexp.MustCompile(`^/[A-Za-z0-9_-]{1,64}$`)

// statusPath ends a forge's commit status path.
var statusPath = regexp.MustCompile(`/statuses/([0-9a-f]{40})$`)

type sink struct {
	mu  sync.Mutex
	dir string
}

// record appends one JSON line to dir/name.
func (s *sink) record(name string, v any) error {
	line, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(s.dir, name), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		http.Error(w, "only POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	now := time.Now().UTC().Format(time.RFC3339)
	switch {
	case statusPath.MatchString(r.URL.Path):
		var st struct {
			State       string `json:"state"`
			Context     string `json:"context"`
			Description string `json:"description"`
			TargetURL   string `json:"target_url"`
		}
		if err := json.Unmarshal(body, &st); err != nil {
			http.Error(w, "status: "+err.Error(), http.StatusBadRequest)
			return
		}
		sha := statusPath.FindStringSubmatch(r.URL.Path)[1]
		err = s.record("statuses.jsonl", map[string]string{
			"time": now, "commit": sha, "context": st.Context, "state": st.State,
			"description": st.Description, "target_url": st.TargetURL,
		})
		if err == nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"id":1,"state":%q,"context":%q}`, st.State, st.Context)
			return
		}
	case topicPath.MatchString(r.URL.Path):
		err = s.record("ntfy.jsonl", map[string]string{
			"time": now, "topic": strings.TrimPrefix(r.URL.Path, "/"),
			"title": r.Header.Get("Title"), "priority": r.Header.Get("Priority"),
			"tags": r.Header.Get("Tags"), "click": r.Header.Get("Click"),
			"message": string(body),
		})
		if err == nil {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":"demo","time":%d,"event":"message","topic":%q}`,
				time.Now().Unix(), strings.TrimPrefix(r.URL.Path, "/"))
			return
		}
	default:
		http.NotFound(w, r)
		return
	}
	http.Error(w, "record: "+err.Error(), http.StatusInternalServerError)
}

func main() {
	dir := flag.String("dir", ".", "`directory` for ntfy.jsonl and statuses.jsonl")
	addrFile := flag.String("addr-file", "", "`file` to write the listen address to")
	flag.Parse()
	if err := run(*dir, *addrFile); err != nil {
		fmt.Fprintln(os.Stderr, "demo-sink:", err)
		os.Exit(1)
	}
}

func run(dir, addrFile string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if addrFile != "" {
		tmp := addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, addrFile); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Handler: &sink{dir: dir}, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
