# Role: server. Headless and hardened (nix/features/headless.nix): SSH with keys
# only, firewall on, no documentation or desktop bits.
{
  kind = "nixos";
  description = "a headless, hardened machine that runs services";
  defaults = {
    system = "x86_64-linux";
    gui = false;
    gaming = false;
    headless = true;
    touch = false;
    autoUpgrade = "farm";
    wakeOnLan.enable = true;
    # How the farm rolls a commit out to it (lib/deploy.nix).
    deploy = {
      wave = 1;
      window = "always";
      outsideWindow = "boot";
      idleMinutes = 15;
      asleep = "wait";
    };
  };
  module =
    { lib, ... }:
    let
      role = lib.mkOverride (import ../lib/util.nix).rolePriority;
    in
    {
      boot.loader.systemd-boot.enable = role true;
      boot.loader.efi.canTouchEfiVariables = role true;
      networking.useNetworkd = role true;
      systemd.network.wait-online.anyInterface = role true;
    };
}
