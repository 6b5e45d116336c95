# The fleet's library: pure functions (builtins only) that the flake, the modules
# and the scripts use, and that nix/tests exercise offline.
#
#   roles       the roles, one file each in nix/roles/ (kind, defaults, module)
#   spec        a host's spec on top of its role; the host-name rule; clear errors
#   hosts       discover hosts from a folder tree; which files each one imports
#   fleet       a fleet as data: settings, hosts, deploy list, .sops.yaml
#   flags       map a service's typed options to its program's command line
#   deploy      a host's rollout settings (wave, window), their checks
#   pull        the fleet-pull script (nh switch from the first remote that answers)
#   util        helpers over builtins
{ }:
rec {
  util = import ./util.nix;
  roles = import ./roles.nix;
  spec = import ./spec.nix { inherit roles; };
  hosts = hostsDir: import ./hosts.nix { inherit hostsDir roles; };
  fleet = import ./fleet.nix;
  flags = import ./flags.nix;
  pull = import ./pull.nix;
  deploy = import ./deploy.nix;
  forAllSystems = f: util.genAttrs spec.allSystems f;
}
