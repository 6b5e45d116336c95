# The primary user's home-manager configuration, shared by every host (NixOS and
# darwin). hostSpec arrives through home-manager's extraSpecialArgs.
{
  lib,
  pkgs,
  hostSpec,
  ...
}:
let
  role = lib.mkOverride (import ../lib/util.nix).rolePriority;
in
{
  home.stateVersion = role "25.05";
  programs.home-manager.enable = true;
  programs.git.enable = role true;
  programs.direnv.enable = role true;
  programs.direnv.nix-direnv.enable = role true;
  home.packages = with pkgs; [
    ripgrep
    jq
  ] ++ lib.optionals (hostSpec.gui && hostSpec.kind == "nixos") [ pkgs.wl-clipboard ];
}
