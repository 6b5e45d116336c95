# Stand-in for nixpkgs' nixos/modules/installer/scan/not-detected.nix: what it sets.
{ lib, ... }:
{
  hardware.enableRedistributableFirmware = lib.mkDefault true;
}
