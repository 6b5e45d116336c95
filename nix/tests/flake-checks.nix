# The flake's checks (`nix flake check ./nix`, run by .woodpecker.yml with the
# network): the offline unit tests once more, on the flake's own nixpkgs lib, and
# on x86_64-linux every host of the fleet evaluated against real nixpkgs,
# nix-darwin, home-manager, sops-nix and disko, plus the example fleet's snapshot
# (fixtures/fleet) with assertions that inheritance, overrides, the signer split
# and the Pi image land where they should once NixOS has merged everything.
{
  self,
  system,
  pkgs,
}:
let
  inherit (pkgs) lib;
  unit = import ./run.nix { nixpkgsLib = pkgs.path + "/lib"; };
  nixos = self.nixosConfigurations;
  darwin = self.darwinConfigurations;
  example = import ./fixtures/fleet;
  exampleHost = self.lib.mkHostIn example;

  # name -> the derivation path of the host's system (evaluated, not built).
  toplevels =
    lib.mapAttrs (_: h: builtins.unsafeDiscardStringContext h.config.system.build.toplevel.drvPath) nixos
    // lib.mapAttrs (_: h: builtins.unsafeDiscardStringContext h.system.drvPath) darwin;

  cfg = name: (exampleHost name).config;
  unit' = name: c: c.systemd.services.${name}.serviceConfig;

  # [ { name; ok; } ]: what a host must look like once NixOS has merged everything.
  expectations = [
    {
      name = "malphas inherits the desktop role (Plasma, Steam, Wake-on-LAN); overrides.nix wins without mkForce";
      ok =
        let
          c = cfg "malphas";
        in
        c.services.desktopManager.plasma6.enable
        && c.programs.steam.enable
        && c.networking.interfaces.enp5s0.wakeOnLan.enable
        && c.time.timeZone == "Europe/Berlin"
        && !c.programs.steam.remotePlay.openFirewall;
    }
    {
      name = "stolas and andras evaluate with the hardening sysctls over nixpkgs' own defaults";
      ok = (cfg "stolas").boot.kernel.sysctl."kernel.kptr_restrict" == 2 && (cfg "andras").boot.kernel.sysctl."kernel.kptr_restrict" == 2;
    }
    {
      name = "the deploy key is the signer's only: the builder gets --deploy-signer and not the key";
      ok =
        let
          b = unit' "farm-builder" (cfg "stolas");
          s = unit' "farm-signer" (cfg "stolas");
        in
        lib.hasInfix "--deploy-signer" b.ExecStart
        && !(lib.any (lib.hasPrefix "deploy-key:") b.LoadCredential)
        && lib.any (lib.hasPrefix "deploy-key:") s.LoadCredential
        && b.ProtectSystem == "strict";
    }
    {
      name = "andras (pi) has an SD image and boots from the card's NIXOS_SD";
      ok =
        (cfg "andras").fileSystems."/".device == "/dev/disk/by-label/NIXOS_SD"
        && (exampleHost "andras").config.system.build ? sdImage;
    }
    {
      name = "every host of the fleet has a login path and sops keyed by its SSH host key";
      ok = lib.all (
        n:
        let
          c = nixos.${n}.config;
        in
        c.users.users.${c.hostSpec.primaryUser}.openssh.authorizedKeys.keys != [ ]
        || c.users.users.${c.hostSpec.primaryUser}.hashedPasswordFile != null
      ) (lib.attrNames nixos);
    }
  ];
  broken = lib.filter (e: !e.ok) expectations;
in
{
  lib-unit-tests =
    if unit.failed == 0 then
      pkgs.writeText "lib-unit-tests" "${toString unit.passed} passed\n"
    else
      throw "nix/tests: ${toString unit.failed} failed: ${builtins.toJSON unit.failures}";
}
// lib.optionalAttrs (system == "x86_64-linux") {
  # Every host, NixOS and darwin, evaluated to its system derivation.
  fleet-eval = pkgs.writeText "fleet-eval" (builtins.toJSON toplevels);

  fleet-expectations =
    if broken == [ ] then
      pkgs.writeText "fleet-expectations" (lib.concatMapStrings (e: "ok - ${e.name}\n") expectations)
    else
      throw "fleet expectations failed: ${lib.concatMapStringsSep "; " (e: e.name) broken}";
}
