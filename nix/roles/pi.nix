# Role: pi. A Raspberry Pi (3, 4 or 5 on the generic aarch64 kernel): extlinux boot
# from the SD card or USB disk, firmware, headless hardening. Defaults only.
{ lib, ... }:
let
  util = import ../lib/util.nix;
  role = (import ../lib/roles.nix).pi;
in
{
  imports = [
    ../modules/nixos/common.nix
    ../modules/nixos/server.nix
    ../modules/nixos/pi.nix
  ];

  hostSpec = util.mapLeaves lib.mkDefault role.defaults;
}
