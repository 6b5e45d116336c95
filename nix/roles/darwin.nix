# Role: darwin. A Mac managed with nix-darwin (and home-manager for its user).
{
  kind = "darwin";
  description = "a Mac managed with nix-darwin";
  defaults = {
    system = "aarch64-darwin";
    gui = true;
    gaming = false;
    headless = false;
    touch = false;
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
      system.defaults = {
        dock.autohide = role true;
        finder.AppleShowAllExtensions = role true;
        NSGlobalDomain.KeyRepeat = role 2;
      };
      security.pam.services.sudo_local.touchIdAuth = role true;
    };
}
