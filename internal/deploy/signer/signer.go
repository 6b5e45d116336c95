package signer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/homelab-farm/farm/internal/atomicfile"
	"github.com/homelab-farm/farm/internal/deploy"
	"github.com/homelab-farm/farm/internal/nixkey"
)

// ErrRefused is wrapped by a client's error when the server refused to sign
// (a seq going back, an expiry too far out, a peer not allowed).
var ErrRefused = errors.New("the deploy signer refused")

// Error codes of a response.
const (
	codeMalformed = "malformed"
	codeRefused   = "refused"
	codeDenied    = "denied"
	codeInternal  = "internal"
)

// maxMessage bounds a request or response.
const maxMessage = 64 << 10

type request struct {
	Op       string           `json:"op"`
	Manifest *deploy.Manifest `json:"manifest,omitempty"`
}

type response struct {
	Signed    *deploy.Signed `json:"signed,omitempty"`
	PublicKey string         `json:"public_key,omitempty"`
	Error     string         `json:"error,omitempty"`
	Code      string         `json:"code,omitempty"`
}

// DefaultMaxTTL is the longest validity the server signs unless configured.
const DefaultMaxTTL = 7 * 24 * time.Hour

// Server signs manifests for the peers of a unix socket. Safe for
// concurrent use; requests are signed one at a time.
type Server struct {
	Key      nixkey.SecretKey
	StateDir string // where the last seq signed per host is kept
	// MaxTTL caps a manifest's expiry, counted from now; 0 means
	// DefaultMaxTTL.
	MaxTTL time.Duration
	// AllowUIDs and AllowGIDs, when either is set, admit only peers whose
	// uid is in AllowUIDs or whose gid is in AllowGIDs.
	AllowUIDs, AllowGIDs []uint32
	Log                  *slog.Logger
	Now                  func() time.Time // nil: time.Now

	mu   sync.Mutex
	last map[string]signedSeq // loaded from StateDir on first use
}

// signedSeq is what the server last signed for one host.
type signedSeq struct {
	Seq       uint64 `json:"seq"`
	StorePath string `json:"store_path"`
	Commit    string `json:"commit"`
}

const stateFile = "signed.json"

// Serve answers connections on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if _, err := s.loadState(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		wg.Go(func() { s.serveConn(c) })
	}
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Server) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	resp := s.answer(c)
	b, _ := json.Marshal(resp)
	_, _ = c.Write(append(b, '\n'))
}

func (s *Server) answer(c net.Conn) response {
	line, err := bufio.NewReader(io.LimitReader(c, maxMessage)).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return response{Error: "unreadable request", Code: codeMalformed}
	}
	// The request is read before the peer is judged, so that a peer
	// turned away reads why rather than a closed connection.
	uid, gid, err := peerCred(c)
	if err != nil {
		s.log().Warn("peer credentials", "err", err)
		return response{Error: "peer credentials unavailable", Code: codeDenied}
	}
	if (len(s.AllowUIDs) > 0 || len(s.AllowGIDs) > 0) && !slices.Contains(s.AllowUIDs, uid) && !slices.Contains(s.AllowGIDs, gid) {
		s.log().Warn("peer not allowed", "uid", uid, "gid", gid)
		return response{Error: fmt.Sprintf("uid %d gid %d is not allowed to sign", uid, gid), Code: codeDenied}
	}
	var req request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return response{Error: "malformed request", Code: codeMalformed}
	}
	switch req.Op {
	case "public-key":
		return response{PublicKey: s.Key.Public().String()}
	case "sign":
		if req.Manifest == nil {
			return response{Error: "no manifest", Code: codeMalformed}
		}
		signed, err := s.sign(*req.Manifest, uid)
		switch {
		case errors.Is(err, deploy.ErrMalformed):
			return response{Error: err.Error(), Code: codeMalformed}
		case errors.Is(err, ErrRefused):
			s.log().Warn("refused to sign", "host", req.Manifest.Host, "seq", req.Manifest.Seq, "err", err)
			return response{Error: strings.TrimPrefix(err.Error(), ErrRefused.Error()+": "), Code: codeRefused}
		case err != nil:
			s.log().Error("sign", "err", err)
			return response{Error: "could not sign", Code: codeInternal}
		}
		return response{Signed: &signed}
	}
	return response{Error: fmt.Sprintf("unknown op %q", req.Op), Code: codeMalformed}
}

// sign checks m against the server's rules, records its seq durably and
// signs it. Nothing is signed unless the seq is recorded first.
func (s *Server) sign(m deploy.Manifest, uid uint32) (deploy.Signed, error) {
	if err := m.Validate(); err != nil {
		return deploy.Signed{}, err
	}
	now := s.now()
	maxTTL := s.MaxTTL
	if maxTTL <= 0 {
		maxTTL = DefaultMaxTTL
	}
	if m.Expires.After(now.Add(maxTTL)) {
		return deploy.Signed{}, fmt.Errorf("%w: expiry %s is more than %s away", ErrRefused, m.Expires.UTC().Format(time.RFC3339), maxTTL)
	}
	if !m.Expires.After(now) {
		return deploy.Signed{}, fmt.Errorf("%w: expiry %s has passed", ErrRefused, m.Expires.UTC().Format(time.RFC3339))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	last, err := s.loadState()
	if err != nil {
		return deploy.Signed{}, err
	}
	prev, seen := last[m.Host]
	switch {
	case seen && m.Seq < prev.Seq:
		return deploy.Signed{}, fmt.Errorf("%w: seq %d for %s is below %d, signed before", ErrRefused, m.Seq, m.Host, prev.Seq)
	case seen && m.Seq == prev.Seq && (m.StorePath != prev.StorePath || m.Commit != prev.Commit):
		return deploy.Signed{}, fmt.Errorf("%w: seq %d for %s was signed for another store path or commit", ErrRefused, m.Seq, m.Host)
	}
	signed, err := deploy.Sign(m, s.Key)
	if err != nil {
		return deploy.Signed{}, err
	}
	if !seen || m.Seq > prev.Seq {
		next := make(map[string]signedSeq, len(last)+1)
		for h, v := range last {
			next[h] = v
		}
		next[m.Host] = signedSeq{Seq: m.Seq, StorePath: m.StorePath, Commit: m.Commit}
		if err := s.saveState(next); err != nil {
			return deploy.Signed{}, err
		}
		s.last = next
	}
	s.log().Info("signed manifest", "host", m.Host, "seq", m.Seq, "store_path", m.StorePath,
		"commit", m.Commit, "expires", m.Expires.UTC().Format(time.RFC3339), "peer_uid", uid)
	return signed, nil
}

// loadState returns the seqs signed so far, read from the state directory
// the first time.
func (s *Server) loadState() (map[string]signedSeq, error) {
	if s.last != nil {
		return s.last, nil
	}
	b, err := os.ReadFile(filepath.Join(s.StateDir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		s.last = map[string]signedSeq{}
		return s.last, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read signer state: %w", err)
	}
	last := map[string]signedSeq{}
	if err := json.Unmarshal(b, &last); err != nil {
		return nil, fmt.Errorf("parse signer state %s: %w", filepath.Join(s.StateDir, stateFile), err)
	}
	s.last = last
	return last, nil
}

func (s *Server) saveState(last map[string]signedSeq) error {
	b, err := json.MarshalIndent(last, "", "  ")
	if err != nil {
		return fmt.Errorf("encode signer state: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(s.StateDir, stateFile), append(b, '\n')); err != nil {
		return fmt.Errorf("write signer state: %w", err)
	}
	return nil
}

// Client asks a Server over its unix socket. It implements deploy.Signer.
type Client struct {
	Socket  string        // the socket's path
	Timeout time.Duration // per request; 0 means 30 s
}

var _ deploy.Signer = (*Client)(nil)

// Sign implements deploy.Signer. An unreachable server is an error that
// wraps neither ErrRefused nor deploy.ErrMalformed.
func (c *Client) Sign(ctx context.Context, m deploy.Manifest) (deploy.Signed, error) {
	resp, err := c.do(ctx, request{Op: "sign", Manifest: &m})
	if err != nil {
		return deploy.Signed{}, err
	}
	if resp.Signed == nil {
		return deploy.Signed{}, fmt.Errorf("deploy signer %s: empty answer", c.Socket)
	}
	return *resp.Signed, nil
}

// PublicKey asks the server for the public half of its key.
func (c *Client) PublicKey(ctx context.Context) (nixkey.PublicKey, error) {
	resp, err := c.do(ctx, request{Op: "public-key"})
	if err != nil {
		return nixkey.PublicKey{}, err
	}
	return nixkey.ParsePublicKey(resp.PublicKey)
}

func (c *Client) do(ctx context.Context, req request) (response, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return response{}, fmt.Errorf("deploy signer: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	b, err := json.Marshal(req)
	if err != nil {
		return response{}, fmt.Errorf("deploy signer: encode request: %w", err)
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return response{}, fmt.Errorf("deploy signer %s: %w", c.Socket, err)
	}
	var resp response
	if err := json.NewDecoder(io.LimitReader(conn, maxMessage)).Decode(&resp); err != nil {
		return response{}, fmt.Errorf("deploy signer %s: read answer: %w", c.Socket, err)
	}
	switch resp.Code {
	case "":
		return resp, nil
	case codeMalformed:
		return response{}, fmt.Errorf("%w: %s", deploy.ErrMalformed, resp.Error)
	case codeRefused, codeDenied:
		return response{}, fmt.Errorf("%w: %s", ErrRefused, resp.Error)
	}
	return response{}, fmt.Errorf("deploy signer %s: %s", c.Socket, resp.Error)
}
