# Role: desktop. A workstation with a graphical session, audio, gaming and
# Wake-on-LAN. Every value here is a default (lib.mkDefault): a host's plain value
# wins. The hostSpec defaults come from nix/lib/roles.nix, the single table the
# offline tests read too.
{ lib, ... }:
let
  util = import ../lib/util.nix;
  role = (import ../lib/roles.nix).desktop;
in
{
  imports = [
    ../modules/nixos/common.nix
    ../modules/nixos/desktop.nix
    ../modules/nixos/gaming.nix
  ];

  hostSpec = util.mapLeaves lib.mkDefault role.defaults;

  boot.loader.systemd-boot.enable = lib.mkDefault true;
  boot.loader.efi.canTouchEfiVariables = lib.mkDefault true;
  networking.networkmanager.enable = lib.mkDefault true;
  powerManagement.cpuFreqGovernor = lib.mkDefault "schedutil";
  services.fwupd.enable = lib.mkDefault true;
  services.printing.enable = lib.mkDefault true;
}
