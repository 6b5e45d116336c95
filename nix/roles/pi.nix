# Role: pi. A Raspberry Pi (3, 4 or 5 on the generic aarch64 kernel), installed
# from an SD image (`nix build ./nix#images.<host>`, nix/features/pi.nix), headless.
{
  kind = "nixos";
  description = "a Raspberry Pi: aarch64, installed from an SD image, headless";
  defaults = {
    system = "aarch64-linux";
    gui = false;
    gaming = false;
    headless = true;
    touch = false;
    autoUpgrade = "farm";
    wakeOnLan.enable = false;
    # How the farm rolls a commit out to it (lib/deploy.nix): at night, and only
    # then (a Pi loses power more often than it reboots on purpose: a system
    # installed for the next boot would come up untested).
    deploy = {
      wave = 2;
      window = "03:00-05:00";
      outsideWindow = "wait";
      idleMinutes = 15;
      asleep = "wait";
    };
  };
  module = ../features/pi.nix;
}
