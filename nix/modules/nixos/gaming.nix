# Gaming: Steam (its unfree packages, steam*, allowed and no others), gamemode,
# 32-bit graphics. Active when hostSpec.gaming is true.
{
  config,
  lib,
  ...
}:
{
  config = lib.mkIf config.hostSpec.gaming {
    programs.steam.enable = lib.mkDefault true;
    programs.steam.remotePlay.openFirewall = lib.mkDefault true;
    programs.gamemode.enable = lib.mkDefault true;
    hardware.graphics.enable32Bit = lib.mkDefault true;
    hardware.steam-hardware.enable = lib.mkDefault true;

    nixpkgs.config.allowUnfreePredicate = pkg: lib.hasPrefix "steam" (lib.getName pkg);
  };
}
