# Role: desktop. A workstation with a graphical session, audio, gaming and
# Wake-on-LAN. The features themselves (nix/features/) follow the hostSpec flags,
# in every role.
{
  kind = "nixos";
  description = "a workstation: graphical session, audio, gaming, Wake-on-LAN";
  defaults = {
    system = "x86_64-linux";
    gui = true;
    gaming = true;
    headless = false;
    touch = false;
    autoUpgrade = "farm";
    wakeOnLan.enable = true;
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
      powerManagement.cpuFreqGovernor = role "schedutil";
      services.fwupd.enable = role true;
      services.printing.enable = role true;
    };
}
