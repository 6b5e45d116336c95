package forgetest

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"sync"
	"testing"
)

// Fixture returns testdata/name from fsys (a package's embedded testdata).
func Fixture(t testing.TB, fsys fs.FS, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(fsys, path.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Call is one request the fake API received.
type Call struct {
	Method, Path, Auth string
	Body               map[string]any // the JSON body, decoded
}

// FakeAPI answers the n-th request with statuses[n] (the last one repeats),
// a JSON body answer and, with 429, Retry-After: 1. It returns the server,
// closed at cleanup, and a function listing the calls so far.
func FakeAPI(t testing.TB, answer string, statuses ...int) (*httptest.Server, func() []Call) {
	t.Helper()
	var mu sync.Mutex
	var calls []Call
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(b, &body)
		mu.Lock()
		calls = append(calls, Call{r.Method, r.URL.Path, r.Header.Get("Authorization"), body})
		n := len(calls)
		mu.Unlock()
		code := statuses[min(n, len(statuses))-1]
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []Call {
		mu.Lock()
		defer mu.Unlock()
		return append([]Call(nil), calls...)
	}
}
