# Evaluating the fleet's modules with nixpkgs' real module system (lib.evalModules)
# offline: the NixOS options they need declared with upstream's types
# (nixos/options.nix), the values nixpkgs sets that meet theirs
# (nixos/nixpkgs-defaults.nix), a stand-in pkgs (nixos/pkgs.nix) and modulesPath
# pointing at stand-ins for the two nixpkgs modules the fleet imports.
#
#   import ./eval.nix { lib; }
#     .nixos { fleet; modules; }        -> the evaluated NixOS configuration
#     .host fleet name                  -> a host put together the way mkHost does
#     .failedAssertions config          -> the messages of the assertions that fail
{ lib }:
rec {
  pkgs = import ./nixos/pkgs.nix lib;

  eval =
    {
      fleet,
      modules,
      darwin ? false,
    }:
    (lib.evalModules {
      specialArgs = {
        inherit fleet;
        modulesPath = ./nixos/modules;
      };
      modules = [
        (if darwin then ./nixos/darwin-options.nix else ./nixos/options.nix)
        { _module.args.pkgs = pkgs; }
      ]
      ++ lib.optional (!darwin) ./nixos/nixpkgs-defaults.nix
      ++ modules;
    }).config;

  nixos = { fleet, modules }: eval { inherit fleet modules; };

  # mkHost's module list (nix/flake.nix) without the flake inputs' modules.
  host =
    fleet: name:
    let
      plan = fleet.plan name;
      darwin = plan.kind == "darwin";
    in
    eval {
      inherit fleet darwin;
      inherit (plan) modules;
    };

  failedAssertions = c: map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
}
