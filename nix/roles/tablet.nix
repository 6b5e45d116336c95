# Role: tablet. A convertible or x86 tablet: a touch-first desktop (GNOME), screen
# rotation and light sensors, on-screen keyboard, power saving. Defaults only.
{ lib, ... }:
let
  util = import ../lib/util.nix;
  role = (import ../lib/roles.nix).tablet;
in
{
  imports = [
    ../modules/nixos/common.nix
    ../modules/nixos/tablet.nix
  ];

  hostSpec = util.mapLeaves lib.mkDefault role.defaults;

  boot.loader.systemd-boot.enable = lib.mkDefault true;
  boot.loader.efi.canTouchEfiVariables = lib.mkDefault true;
  networking.networkmanager.enable = lib.mkDefault true;
}
