// Package hostname holds the one rule for host names in Go: a host name is
// one DNS label (RFC 1123): lowercase letters, digits and '-', 1 to 63
// characters, not starting or ending with '-'. The fleet flake applies the
// same rule to nix/hosts/<name>; both are tested against
// testdata/hostnames.json at the repository root.
//
// Host names come from a pushed flake's attribute names and are untrusted
// until Validate accepts them. A valid name is safe as a file name, in a
// commit status context and in an HTTP header.
package hostname
