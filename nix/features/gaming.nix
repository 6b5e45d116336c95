# Gaming: Steam (its unfree packages, steam*, allowed and no others), gamemode,
# 32-bit graphics. Active when hostSpec.gaming is true (x86_64-linux with a
# graphical session: lib/spec.nix refuses the rest).
{
  config,
  lib,
  ...
}:
let
  role = lib.mkOverride (import ../lib/util.nix).rolePriority;
in
{
  config = lib.mkIf config.hostSpec.gaming {
    programs.steam.enable = role true;
    programs.steam.remotePlay.openFirewall = role true;
    programs.gamemode.enable = role true;
    hardware.graphics.enable32Bit = role true;
    hardware.steam-hardware.enable = role true;

    nixpkgs.config.allowUnfreePredicate = pkg: lib.hasPrefix "steam" (lib.getName pkg);
  };
}
