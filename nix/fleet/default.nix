# This repository's fleet: nix/hosts, nix/secrets and the settings below, as data
# (lib/fleet.nix). The flake hands it to every module as the `fleet` argument.
import ../lib/fleet.nix {
  hostsDir = ../hosts;
  secretsDir = ../secrets;
  settings = import ./settings.nix;
}
