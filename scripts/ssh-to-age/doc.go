// Command ssh-to-age prints the age form of an OpenSSH ed25519 key, as sops-nix
// derives a host's age identity from its SSH host key: the recipient (age1...)
// of a public key, or with -private-key the identity (AGE-SECRET-KEY-1...) of a
// private one. It takes the flags of github.com/Mic92/ssh-to-age, which the Go
// module proxy here does not serve; scripts/setup builds this one instead.
//
//	ssh-to-age -i ~/.ssh/id_ed25519.pub
//	ssh-to-age -private-key -i /etc/ssh/ssh_host_ed25519_key
//
// The X25519 public key is the Montgomery u = (1+y)/(1-y) mod 2^255-19 of the
// ed25519 point's y; the X25519 secret is the first 32 bytes of SHA-512 of the
// ed25519 seed (X25519 clamps it itself). Both are Bech32-encoded like age does.
package main
