// Package fleettest makes example fleet repositories for tests: a real git
// repository whose nix/ directory is a flake that needs no nixpkgs. Each
// host's system closure is a plain derivation (aarch64-linux ones built by
// a static aarch64 busybox under qemu) carrying a bin/switch-to-configuration
// that appends "activated <host> <mode>" to $FARM_ACTIVATION_LOG.
package fleettest
