# The flake's checks (`nix flake check ./nix`, run by .woodpecker.yml with the
# network): the offline unit tests once more, and on x86_64-linux every host
# evaluated against real nixpkgs, nix-darwin, home-manager, sops-nix and disko,
# with assertions that inheritance and overrides land where they should.
{
  self,
  system,
  pkgs,
}:
let
  inherit (pkgs) lib;
  unit = import ./run.nix;
  nixos = self.nixosConfigurations;
  darwin = self.darwinConfigurations;

  # name -> the derivation path of the host's system (evaluated, not built).
  toplevels =
    lib.mapAttrs (_: h: builtins.unsafeDiscardStringContext h.config.system.build.toplevel.drvPath) nixos
    // lib.mapAttrs (_: h: builtins.unsafeDiscardStringContext h.system.drvPath) darwin;

  cfg = name: nixos.${name}.config;
  unit' = name: cfg: cfg.systemd.services.${name}.serviceConfig;

  # [ { name; ok; } ]: what a host must look like once NixOS has merged everything.
  expectations = [
    {
      name = "malphas inherits the desktop role (Plasma, Steam, Wake-on-LAN)";
      ok =
        (cfg "malphas").services.desktopManager.plasma6.enable
        && (cfg "malphas").programs.steam.enable
        && (cfg "malphas").networking.interfaces.enp5s0.wakeOnLan.enable;
    }
    {
      name = "malphas' overrides.nix beats the role's mkDefault without mkForce";
      ok =
        (cfg "malphas").time.timeZone == "Europe/Berlin"
        && !(cfg "malphas").programs.steam.remotePlay.openFirewall;
    }
    {
      name = "malphas' hostSpec: its values, the role's defaults, the farm's MAC";
      ok =
        let
          s = (cfg "malphas").hostSpec;
        in
        s.role == "desktop"
        && s.primaryUser == "rain"
        && s.gaming
        && s.gpu == "amd"
        && s.wakeOnLan.mac == "a8:a1:59:3c:10:7e";
    }
    {
      name = "every host trusts the farm's cache key";
      ok = lib.all (
        n: lib.elem (import ../farm).settings.cachePublicKey (cfg n).nix.settings.extra-trusted-public-keys
      ) (lib.attrNames nixos);
    }
    {
      name = "farm hosts run the agent, as root, daily timer, not restarted by a switch";
      ok =
        (cfg "malphas").systemd.services.farm-agent.restartIfChanged == false
        && !((unit' "farm-agent" (cfg "malphas")) ? DynamicUser)
        && (cfg "malphas").systemd.timers.farm-agent.timerConfig.OnCalendar == "daily"
        && lib.hasInfix ''"--token-file" "%d/token"'' (unit' "farm-agent" (cfg "malphas")).ExecStart;
    }
    {
      name = "the agent's token is its agent-tokens file; it takes the notifier's pokes through the firewall";
      ok =
        let
          c = cfg "malphas";
        in
        baseNameOf (dirOf (toString c.sops.secrets.farm-agent-token.sopsFile)) == "agent-tokens"
        && lib.hasInfix ''"--poke-token-file" "%d/poke-token"'' (unit' "farm-agent" c).ExecStart
        && lib.elem (import ../farm).settings.pokePort c.networking.firewall.allowedTCPPorts;
    }
    {
      name = "stolas' builder checks every deployed host's agent token, from credentials";
      ok =
        let
          s = unit' "farm-builder" (cfg "stolas");
        in
        lib.hasInfix ''"--agent-tokens-dir"'' s.ExecStart
        && lib.all (
          h: lib.elem "agent-token-${h}:/run/secrets/agent-token-${h}" s.LoadCredential
        ) (import ../farm).deployHosts;
    }
    {
      name = "stolas' notifier pokes the agents with the poke token";
      ok = lib.hasInfix ''"--poke-token-file" "%d/poke-token"'' (unit' "farm-notifier" (cfg "stolas")).ExecStart;
    }
    {
      name = "stolas runs the builder hardened, secrets as credentials, aarch64 by binfmt";
      ok =
        let
          s = unit' "farm-builder" (cfg "stolas");
        in
        s.DynamicUser
        && lib.hasInfix ''"--signing-key-file" "%d/signing-key"'' s.ExecStart
        && lib.elem "signing-key:/run/secrets/cache-signing-key" s.LoadCredential
        && lib.elem "aarch64-linux" (cfg "stolas").boot.binfmt.emulatedSystems;
    }
    {
      name = "stolas runs the notifier with the ntfy token from sops";
      ok = lib.hasInfix ''"--ntfy-token-file" "%d/ntfy-token"'' (unit' "farm-notifier" (cfg "stolas")).ExecStart;
    }
    {
      name = "stolas' disk is disko's; andras (role and user only) boots by extlinux";
      ok =
        (cfg "stolas").disko.devices.disk.main.device == "/dev/nvme0n1"
        && (cfg "andras").boot.loader.generic-extlinux-compatible.enable
        && (cfg "andras").nixpkgs.hostPlatform.system == "aarch64-linux";
    }
    {
      name = "sops-nix derives each host's key from its SSH host key";
      ok = lib.all (n: (cfg n).sops.age.sshKeyPaths == [ "/etc/ssh/ssh_host_ed25519_key" ]) (
        lib.attrNames nixos
      );
    }
  ];
  broken = lib.filter (e: !e.ok) expectations;
in
{
  lib-unit-tests =
    if unit.failed == 0 then
      pkgs.writeText "lib-unit-tests" "${toString unit.passed} passed\n"
    else
      throw "nix/tests/lib.nix: ${toString unit.failed} failed: ${builtins.toJSON unit.failures}";
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
