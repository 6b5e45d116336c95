# The five roles as data: what kind of system each one is built with (NixOS or
# nix-darwin), its role module, and the hostSpec defaults a host inherits.
#
# The role modules in nix/roles/ set the same defaults with lib.mkDefault, so a
# host's plain value (in default.nix or in any other file of its folder) wins
# without lib.mkForce. The pure resolver in spec.nix applies the same rule to
# these defaults so the inheritance can be tested without nixpkgs.
{
  desktop = {
    kind = "nixos";
    module = ../roles/desktop.nix;
    description = "a workstation: graphical session, audio, gaming, Wake-on-LAN";
    defaults = {
      system = "x86_64-linux";
      gui = true;
      gaming = true;
      headless = false;
      touch = false;
      autoUpgrade = "farm";
      wakeOnLan.enable = true;
    };
  };

  server = {
    kind = "nixos";
    module = ../roles/server.nix;
    description = "a headless, hardened machine that runs services";
    defaults = {
      system = "x86_64-linux";
      gui = false;
      gaming = false;
      headless = true;
      touch = false;
      autoUpgrade = "farm";
      wakeOnLan.enable = true;
    };
  };

  pi = {
    kind = "nixos";
    module = ../roles/pi.nix;
    description = "a Raspberry Pi: aarch64, extlinux boot, headless";
    defaults = {
      system = "aarch64-linux";
      gui = false;
      gaming = false;
      headless = true;
      touch = false;
      autoUpgrade = "farm";
      wakeOnLan.enable = false;
    };
  };

  darwin = {
    kind = "darwin";
    module = ../roles/darwin.nix;
    description = "a Mac managed with nix-darwin";
    defaults = {
      system = "aarch64-darwin";
      gui = true;
      gaming = false;
      headless = false;
      touch = false;
      autoUpgrade = "pull";
      wakeOnLan.enable = false;
    };
  };

  tablet = {
    kind = "nixos";
    module = ../roles/tablet.nix;
    description = "a convertible or tablet: touch, rotation, power saving";
    defaults = {
      system = "x86_64-linux";
      gui = true;
      gaming = false;
      headless = false;
      touch = true;
      autoUpgrade = "pull";
      wakeOnLan.enable = false;
    };
  };
}
