# Role: server. Headless and hardened: SSH with keys only, firewall on, no
# documentation or desktop bits, automatic garbage collection. Defaults only.
{ lib, ... }:
let
  util = import ../lib/util.nix;
  role = (import ../lib/roles.nix).server;
in
{
  imports = [
    ../modules/nixos/common.nix
    ../modules/nixos/server.nix
  ];

  hostSpec = util.mapLeaves lib.mkDefault role.defaults;

  boot.loader.systemd-boot.enable = lib.mkDefault true;
  boot.loader.efi.canTouchEfiVariables = lib.mkDefault true;
  networking.useNetworkd = lib.mkDefault true;
  systemd.network.wait-online.anyInterface = lib.mkDefault true;
}
