package cache

import "github.com/homelab-farm/farm/internal/nixkey"

// The cache signs with the keys of package nixkey; these names keep the
// cache's API whole for its callers.
type (
	// SecretKey signs narinfo fingerprints.
	SecretKey = nixkey.SecretKey
	// PublicKey verifies narinfo signatures.
	PublicKey = nixkey.PublicKey
)

var (
	// ErrBadKey is wrapped by every error about a malformed key.
	ErrBadKey = nixkey.ErrBadKey
	// ErrKeyExposed is wrapped by the error about a secret key file that
	// its group or others can read.
	ErrKeyExposed = nixkey.ErrKeyExposed
)

// ParseSecretKey parses a key in Nix's "name:base64" form.
func ParseSecretKey(s string) (SecretKey, error) { return nixkey.ParseSecretKey(s) }

// LoadSecretKeyFile reads a secret key from a file only its owner can read
// (nixkey.Load).
func LoadSecretKeyFile(path string) (SecretKey, error) { return nixkey.Load(path) }

// ParsePublicKey parses a public key in Nix's "name:base64" form.
func ParsePublicKey(s string) (PublicKey, error) { return nixkey.ParsePublicKey(s) }

// GenerateKey makes a new key pair named name (for tests and first setup).
func GenerateKey(name string) (SecretKey, error) { return nixkey.Generate(name) }
