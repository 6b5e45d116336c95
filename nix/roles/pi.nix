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
  };
  module = ../features/pi.nix;
}
