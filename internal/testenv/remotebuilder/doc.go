// Package remotebuilder starts a real second build machine for tests: a
// network namespace on a private subnet the test creates, with its own
// host name, its own Nix store (a directory mounted over /nix in the
// machine's mount namespace) and a real sshd (Debian's openssh-server) whose
// only command is `nix-daemon --stdio`, so that Nix reaches it as an
// `ssh-ng://` remote builder with a key made for the test.
package remotebuilder
