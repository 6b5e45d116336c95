// Package git keeps the builder's mirror of each fleet repository: a bare
// repository that commits are fetched into from whichever remote has them,
// and from which Nix evaluates the flake at an exact commit.
//
// What a push brings is untrusted, so git never runs a hook here (every
// invocation says core.hooksPath=/dev/null and a mirror has no hooks
// directory), commits are full ids only, and remote URLs, which may carry
// credentials, never reach the disk: a remote's refs are named by a hash of
// its URL and fetches write no FETCH_HEAD.
package git
