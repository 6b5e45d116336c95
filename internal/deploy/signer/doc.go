// Package signer signs deploy manifests in a process of its own, so that
// the deploy key is readable only by that process: the builder (and every
// git and nix child it runs) asks over a unix socket and never holds the
// key.
//
// The protocol is one JSON request and one JSON response per connection:
//
//	→ {"op":"sign","manifest":{...deploy.Manifest...}}
//	← {"signed":{"manifest":...,"signature":"name:base64"}}
//	→ {"op":"public-key"}
//	← {"public_key":"name:base64"}
//	← {"error":"...","code":"malformed"|"refused"|"denied"|"internal"}
//
// The server enforces what it can on its own: the manifest is well formed,
// its expiry lies within the server's maximum TTL, and a host's seq never
// goes below the last one this server signed for it (the same seq only for
// the same store path and commit: a renewal). It remembers those seqs in its
// state directory and logs every signature. Peers are checked with
// SO_PEERCRED against allowed uids and gids when those are configured.
package signer
