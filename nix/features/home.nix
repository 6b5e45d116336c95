# The primary user's home-manager configuration, shared by every host (NixOS and
# darwin). hostSpec arrives through home-manager's extraSpecialArgs.
{
  lib,
  pkgs,
  hostSpec,
  ...
}:
{
  home.stateVersion = lib.mkDefault "25.05";
  programs.home-manager.enable = true;
  programs.git.enable = lib.mkDefault true;
  programs.direnv.enable = lib.mkDefault true;
  programs.direnv.nix-direnv.enable = lib.mkDefault true;
  home.packages = with pkgs; [
    ripgrep
    jq
  ] ++ lib.optionals (hostSpec.gui && hostSpec.kind == "nixos") [ pkgs.wl-clipboard ];
}
