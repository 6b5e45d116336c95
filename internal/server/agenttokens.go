package server

import (
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"

	"github.com/homelab-farm/farm/internal/hostname"
	"github.com/homelab-farm/farm/internal/httpsafe"
	"github.com/homelab-farm/farm/internal/safepath"
	"github.com/homelab-farm/farm/internal/secretfile"
)

// AgentTokens are the agents' report tokens: one file per host in a
// directory, read at start and again by Load (on SIGHUP), never per request.
type AgentTokens struct {
	dir    string // "" refuses every agent
	log    *slog.Logger
	tokens atomic.Pointer[map[string][]byte]
}

// NewAgentTokens reads the tokens in dir ("": none).
func NewAgentTokens(dir string, log *slog.Logger) *AgentTokens {
	a := &AgentTokens{dir: dir, log: log}
	a.Load()
	return a
}

// Load reads the tokens again; it replaces the set at once, so a token
// removed or changed is refused from then on. A file that cannot be read
// or holds no token is skipped and logged.
func (a *AgentTokens) Load() {
	tokens := map[string][]byte{}
	defer func() { a.tokens.Store(&tokens) }()
	if a.dir == "" {
		return
	}
	entries, err := os.ReadDir(a.dir)
	if err != nil {
		a.log.Warn("agent tokens not loaded; every report is refused", "dir", a.dir, logErr, err)
		return
	}
	for _, e := range entries {
		host := e.Name()
		if e.IsDir() || !hostname.Valid(host) {
			continue
		}
		token, err := readToken(a.dir, host)
		if err != nil {
			a.log.Warn("agent token skipped", "host", host, logErr, err)
			continue
		}
		tokens[host] = token
	}
	a.log.Info("agent tokens loaded", "dir", a.dir, "hosts", len(tokens))
}

func readToken(dir, host string) ([]byte, error) {
	file, err := safepath.Join(dir, host)
	if err != nil {
		return nil, err
	}
	token, err := secretfile.Read(file, "agent token")
	if err != nil {
		return nil, err
	}
	return []byte(token), nil
}

// Authorized reports whether r carries host's token.
func (a *AgentTokens) Authorized(host string, r *http.Request) bool {
	if a == nil || !hostname.Valid(host) {
		return false
	}
	// The tokens were read at Load, from paths checked then: the
	// request's host is only looked up here.
	want, ok := (*a.tokens.Load())[host]
	return ok && httpsafe.Bearer(r, want)
}
