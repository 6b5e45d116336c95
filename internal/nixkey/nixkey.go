package nixkey

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"

	"github.com/homelab-farm/farm/internal/atomicfile"
)

// ErrBadKey is wrapped by every error about a malformed signing or public key.
var ErrBadKey = errors.New("malformed key")

// ErrKeyExposed is wrapped by the error about a secret key file that its
// group or others can read.
var ErrKeyExposed = errors.New("readable by group or others")

// SecretKey signs fingerprints (narinfos, deploy manifests).
type SecretKey struct {
	key signature.SecretKey
}

// PublicKey verifies signatures ("name:base64").
type PublicKey struct {
	key signature.PublicKey
}

// ParseSecretKey parses a key in Nix's "name:base64" form.
func ParseSecretKey(s string) (SecretKey, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, ":") {
		return SecretKey{}, fmt.Errorf("%w: want name:base64", ErrBadKey)
	}
	k, err := signature.LoadSecretKey(s)
	if err != nil {
		return SecretKey{}, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return SecretKey{key: k}, nil
}

// Load reads a secret key from a file, refusing one that its group or
// others can read (ErrKeyExposed). The error names the file but never
// contains any of its bytes.
func Load(path string) (SecretKey, error) {
	if path == "" {
		return SecretKey{}, errors.New("no signing key file given")
	}
	f, err := os.Open(path)
	if err != nil {
		return SecretKey{}, fmt.Errorf("read signing key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return SecretKey{}, fmt.Errorf("read signing key: %w", err)
	}
	if mode := fi.Mode().Perm(); mode&0o044 != 0 {
		return SecretKey{}, fmt.Errorf("signing key file %s has mode %04o: %w (chmod 600 it)", path, mode, ErrKeyExposed)
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return SecretKey{}, fmt.Errorf("read signing key: %w", err)
	}
	k, err := ParseSecretKey(string(b))
	if err != nil {
		return SecretKey{}, fmt.Errorf("signing key file %s: %w", path, ErrBadKey)
	}
	return k, nil
}

// Generate makes a new key pair named name.
func Generate(name string) (SecretKey, error) {
	sk, _, err := signature.GenerateKeypair(name, nil)
	if err != nil {
		return SecretKey{}, fmt.Errorf("generate key: %w", err)
	}
	return SecretKey{key: sk}, nil
}

// LoadOrCreate loads the key at path (as Load does), or, when there is no
// file there, generates one named name and writes it: a fresh temporary
// made 0600 with O_EXCL (never a file left over with other modes), synced,
// renamed into place, the directory synced. created reports which.
func LoadOrCreate(path, name string) (k SecretKey, created bool, err error) {
	k, err = Load(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return k, false, err
	}
	if k, err = Generate(name); err != nil {
		return SecretKey{}, false, err
	}
	if err := atomicfile.Write(path, []byte(k.String()+"\n")); err != nil {
		return SecretKey{}, false, fmt.Errorf("write key: %w", err)
	}
	return k, true, nil
}

// Public returns the key that verifies this key's signatures.
func (k SecretKey) Public() PublicKey { return PublicKey{key: k.key.ToPublicKey()} }

// Name is the key's name, the part before the colon.
func (k SecretKey) Name() string { return k.key.ToPublicKey().Name }

// Sign signs a fingerprint and returns the signature in "name:base64" form.
func (k SecretKey) Sign(fingerprint string) (string, error) {
	sig, err := k.key.Sign(nil, fingerprint)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return sig.String(), nil
}

// String returns the secret key in "name:base64" form, for writing to a key file.
func (k SecretKey) String() string { return k.key.String() }

// ParsePublicKey parses a public key in Nix's "name:base64" form.
func ParsePublicKey(s string) (PublicKey, error) {
	k, err := signature.ParsePublicKey(strings.TrimSpace(s))
	if err != nil {
		return PublicKey{}, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return PublicKey{key: k}, nil
}

// ParsePublicKeys parses a file of public keys, one per line; blank lines
// and lines starting with # are skipped. file names the source in errors.
// A file without any key is an error.
func ParsePublicKeys(file string, data []byte) ([]PublicKey, error) {
	var keys []PublicKey
	for i, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, err := ParsePublicKey(l)
		if err != nil {
			return nil, fmt.Errorf("public key file %s:%d: %w", file, i+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("public key file %s holds no key", file)
	}
	return keys, nil
}

// LoadPublicKeys reads and parses a file of public keys (ParsePublicKeys).
func LoadPublicKeys(path string) ([]PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("public key file: %w", err)
	}
	return ParsePublicKeys(path, b)
}

// String returns the key in "name:base64" form, as trusted-public-keys wants it.
func (k PublicKey) String() string { return k.key.String() }

// Name is the key's name, the part before the colon.
func (k PublicKey) Name() string { return k.key.Name }

// Verify reports whether sig ("name:base64") is this key's valid signature
// of fingerprint.
func (k PublicKey) Verify(fingerprint, sig string) bool {
	s, err := signature.ParseSignature(sig)
	if err != nil {
		return false
	}
	return k.key.Verify(fingerprint, s)
}
