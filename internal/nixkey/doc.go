// Package nixkey handles Nix signing keys ("name:base64", as
// `nix key generate-secret` writes them): parsing, loading a secret key
// from a file only its owner can read, generating one, and making one on
// first start through an atomic, synced write. The binary cache signs
// narinfos with these keys and the deploy pipeline signs manifests; a host
// that only verifies manifests needs this package and nothing of the cache.
package nixkey
