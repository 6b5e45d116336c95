// Package deploy makes and checks deploy manifests: the farm's signed word
// that one host should run one store path. A host switches only to a store
// path named in a manifest signed by the farm's deploy key (an ed25519 key in
// Nix's name:base64 format, distinct from the cache's key), made for that
// host, with a sequence number higher than the last one it applied.
package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/homelab-farm/farm/internal/cache"
	"github.com/homelab-farm/farm/internal/nix"
)

// Reasons a manifest is refused. Verify wraps exactly one of them.
var (
	ErrMalformed    = errors.New("malformed manifest")
	ErrBadSignature = errors.New("manifest signature is not valid under a trusted deploy key")
	ErrWrongHost    = errors.New("manifest is for another host")
	ErrStale        = errors.New("manifest is not newer than the last one applied")
)

// domain prefixes the signed bytes so that no other signature made with the
// same key (a narinfo's, say) can pass for a manifest's.
const domain = "homelab-farm deploy manifest v1\n"

// Manifest names the closure one host should run.
type Manifest struct {
	Host      string    `json:"host"`
	StorePath string    `json:"storePath"`
	Commit    string    `json:"commit"`
	Seq       uint64    `json:"seq"`
	IssuedAt  time.Time `json:"issuedAt"`
	// Cache is the substituter URL the host realises the closure from.
	Cache string `json:"cache,omitempty"`
}

// Signed is a manifest as served to hosts: the exact bytes signed and the
// signature over them.
type Signed struct {
	Manifest  json.RawMessage `json:"manifest"`
	Signature string          `json:"signature"` // name:base64
}

// Validate checks the fields a manifest must have.
func (m Manifest) Validate() error {
	switch {
	case m.Host == "":
		return fmt.Errorf("%w: no host", ErrMalformed)
	case m.Seq == 0:
		return fmt.Errorf("%w: seq must be positive", ErrMalformed)
	}
	if err := nix.ValidateStorePath(m.StorePath); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// Sign signs m with the deploy key.
func Sign(m Manifest, key cache.SecretKey) (Signed, error) {
	if err := m.Validate(); err != nil {
		return Signed{}, err
	}
	body, err := json.Marshal(m)
	if err != nil {
		return Signed{}, fmt.Errorf("encode manifest: %w", err)
	}
	sig, err := key.Sign(domain + string(body))
	if err != nil {
		return Signed{}, err
	}
	return Signed{Manifest: body, Signature: sig}, nil
}

// Verify checks s and returns its manifest if it is signed by one of
// trusted, is for host, and has a seq above lastSeq (the last one this host
// applied; 0 if none).
func Verify(s Signed, trusted []cache.PublicKey, host string, lastSeq uint64) (Manifest, error) {
	if len(s.Manifest) == 0 || s.Signature == "" {
		return Manifest{}, fmt.Errorf("%w: missing manifest or signature", ErrMalformed)
	}
	ok := false
	for _, k := range trusted {
		if k.Verify(domain+string(s.Manifest), s.Signature) {
			ok = true
			break
		}
	}
	if !ok {
		return Manifest{}, ErrBadSignature
	}
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(s.Manifest)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	if m.Host != host {
		return Manifest{}, fmt.Errorf("%w: made for %q, this is %q", ErrWrongHost, m.Host, host)
	}
	if m.Seq <= lastSeq {
		return Manifest{}, fmt.Errorf("%w: seq %d, last applied %d", ErrStale, m.Seq, lastSeq)
	}
	return m, nil
}
