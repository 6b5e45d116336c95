# Role: tablet. A convertible or x86 tablet: touch-first (nix/features/touch.nix),
# power saving; pulls its updates (it is often away from home).
{
  kind = "nixos";
  description = "a convertible or tablet: touch, rotation, power saving";
  defaults = {
    system = "x86_64-linux";
    gui = true;
    gaming = false;
    headless = false;
    touch = true;
    autoUpgrade = "pull";
    wakeOnLan.enable = false;
    # How the farm rolls a commit out to it (lib/deploy.nix).
    deploy = {
      wave = 2;
      window = "when-idle";
      outsideWindow = "boot";
      idleMinutes = 15;
      asleep = "skip";
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
      networking.networkmanager.enable = role true;
    };
}
