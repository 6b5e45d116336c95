# The fleet's library: pure functions (builtins only) that the flake and the NixOS
# modules use, and that nix/tests exercise with `nix-instantiate --eval` offline.
#
#   roles       the five roles as data (kind, module, defaults)
#   spec        resolve a host's spec on top of its role; clear errors
#   hosts       discover hosts from a folder tree; which files each one imports
#   flags       map a service's typed options to its program's command line
#   util        helpers over builtins
{ }:
rec {
  util = import ./util.nix;
  roles = import ./roles.nix;
  spec = import ./spec.nix { inherit roles; };
  hosts = hostsDir: import ./hosts.nix { inherit hostsDir roles; };
  flags = import ./flags.nix;
  forAllSystems = f: util.genAttrs spec.allSystems f;
}
