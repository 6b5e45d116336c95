package agent

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPokeHandlerHTTP checks the auth scheme rule (RFC 7235: the scheme is
// case-insensitive) and that every answer of the agent's server, errors
// included, carries nosniff.
func TestPokeHandlerHTTP(t *testing.T) {
	pokes := make(chan Poke, 1)
	srv := httptest.NewServer(PokeHandler([]byte("poke-secret"), pokes))
	defer srv.Close()
	tests := []struct {
		name, method, path, auth, body string
		status                         int
	}{
		{"Bearer", http.MethodPost, "/poke", "Bearer poke-secret", "", http.StatusAccepted},
		{"bearer", http.MethodPost, "/poke", "bearer poke-secret", "", http.StatusAccepted},
		{"BEARER", http.MethodPost, "/poke", "BEARER poke-secret", "", http.StatusAccepted},
		{"Basic", http.MethodPost, "/poke", "Basic poke-secret", "", http.StatusUnauthorized},
		{"no token", http.MethodPost, "/poke", "", "", http.StatusUnauthorized},
		{"malformed", http.MethodPost, "/poke", "Bearer poke-secret", "{", http.StatusBadRequest},
		{"wrong method", http.MethodGet, "/poke", "", "", http.StatusMethodNotAllowed},
		{"unknown path", http.MethodGet, "/nope", "", "", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
			select {
			case <-pokes:
			default:
			}
		})
	}
}
