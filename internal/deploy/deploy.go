package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/homelab-farm/farm/internal/nix"
	"github.com/homelab-farm/farm/internal/nixkey"
)

// Reasons a manifest is refused. Verify and Compare wrap exactly one of them.
var (
	ErrMalformed    = errors.New("malformed manifest")
	ErrBadSignature = errors.New("manifest signature is not valid under a trusted deploy key")
	ErrWrongHost    = errors.New("manifest is for another host")
	ErrStale        = errors.New("manifest is not newer than the last one applied")
	ErrExpired      = errors.New("manifest has expired")
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
	// Expires is when the manifest stops being valid. The builder renews
	// a host's current manifest (same seq, path and commit, a later
	// expiry) long before that, so that only a manifest nobody stands
	// behind any more runs out.
	Expires time.Time `json:"expires"`
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

// checkExpiry refuses a manifest without an expiry, or one that expires
// before it is issued.
func (m Manifest) checkExpiry() error {
	if m.Expires.IsZero() || !m.Expires.After(m.IssuedAt) {
		return fmt.Errorf("%w: expiry %s is not after issue time %s", ErrMalformed,
			m.Expires.Format(time.RFC3339), m.IssuedAt.Format(time.RFC3339))
	}
	return nil
}

// Signer signs deploy manifests with the farm's deploy key. Sign refuses a
// manifest that is not valid (an error wrapping ErrMalformed) and may
// refuse one that breaks the signer's own rules (a seq going back, an
// expiry too far out); any other error means nothing was signed and asking
// again later may work. Implementations are safe for concurrent use.
type Signer interface {
	Sign(ctx context.Context, m Manifest) (Signed, error)
}

// KeySigner signs in this process with a key it holds.
type KeySigner struct {
	Key nixkey.SecretKey
}

var _ Signer = KeySigner{}

// Sign implements Signer.
func (k KeySigner) Sign(_ context.Context, m Manifest) (Signed, error) {
	return Sign(m, k.Key)
}

// Sign signs m with the deploy key: the one place manifests are signed.
func Sign(m Manifest, key nixkey.SecretKey) (Signed, error) {
	if err := m.Validate(); err != nil {
		return Signed{}, err
	}
	if err := m.checkExpiry(); err != nil {
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

// Parse decodes the manifest of s without checking its signature: for the
// builder, which renews what it signed itself, never for a host.
func Parse(s Signed) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(s.Manifest)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// Verify checks s and returns its manifest if it is signed by one of
// trusted, is for host and has not expired at now. skew is how far the
// host's clock may run ahead of the builder's: a manifest is refused only
// once now is past its expiry by more than skew. Whether the manifest is
// newer than what the host last acted on is for Compare.
func Verify(s Signed, trusted []nixkey.PublicKey, host string, now time.Time, skew time.Duration) (Manifest, error) {
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
	m, err := Parse(s)
	if err != nil {
		return Manifest{}, err
	}
	if err := m.checkExpiry(); err != nil {
		return Manifest{}, err
	}
	if m.Host != host {
		return Manifest{}, fmt.Errorf("%w: made for %q, this is %q", ErrWrongHost, m.Host, host)
	}
	if now.After(m.Expires.Add(skew)) {
		return Manifest{}, fmt.Errorf("%w: at %s (now %s)", ErrExpired,
			m.Expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return m, nil
}

// Order is how a manifest relates to the last one a host acted on.
type Order int

// Orders Compare returns.
const (
	// Newer: a higher seq, to be applied.
	Newer Order = iota + 1
	// Same: the seq and store path acted on last, or a renewal of that
	// manifest (a later expiry): nothing to do.
	Same
)

// Compare says whether m is newer than the last manifest acted on (seq
// lastSeq for store path lastPath; 0 and "" when there is none) or the same
// one. Anything else (a lower seq, or the same seq for another path) is an
// error wrapping ErrStale.
func Compare(m Manifest, lastSeq uint64, lastPath string) (Order, error) {
	switch {
	case m.Seq > lastSeq:
		return Newer, nil
	case m.Seq == lastSeq && m.StorePath == lastPath:
		return Same, nil
	case m.Seq == lastSeq:
		return 0, fmt.Errorf("%w: seq %d names %s, the one applied named %s", ErrStale, m.Seq, m.StorePath, lastPath)
	}
	return 0, fmt.Errorf("%w: seq %d, last applied %d", ErrStale, m.Seq, lastSeq)
}
