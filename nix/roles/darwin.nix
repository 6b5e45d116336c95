# Role: darwin. A Mac managed with nix-darwin (and home-manager for its user).
# Defaults only.
{ lib, ... }:
let
  util = import ../lib/util.nix;
  role = (import ../lib/roles.nix).darwin;
in
{
  imports = [ ../modules/darwin/common.nix ];

  hostSpec = util.mapLeaves lib.mkDefault role.defaults;

  system.defaults = {
    dock.autohide = lib.mkDefault true;
    finder.AppleShowAllExtensions = lib.mkDefault true;
    NSGlobalDomain.KeyRepeat = lib.mkDefault 2;
  };
  security.pam.services.sudo_local.touchIdAuth = lib.mkDefault true;
}
