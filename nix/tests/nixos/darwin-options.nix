# The nix-darwin options the fleet's darwin modules set, declared with nix-darwin's
# types (see options.nix for why).
{ lib, ... }:
let
  inherit (lib) mkOption types;
  opt = type: default: mkOption { inherit type default; };
  daemon = types.submodule { options.serviceConfig = opt (types.attrsOf types.anything) { }; };
  user = types.submodule {
    options = {
      home = opt (types.nullOr types.path) null;
      openssh.authorizedKeys.keys = opt (types.listOf types.str) [ ];
    };
  };
in
{
  options = {
    assertions = opt (types.listOf types.unspecified) [ ];
    networking.hostName = opt (types.nullOr types.str) null;
    networking.computerName = opt (types.nullOr types.str) null;
    nixpkgs.hostPlatform = mkOption { type = types.either types.str types.attrs; };
    nixpkgs.overlays = opt (types.listOf types.unspecified) [ ];
    system.stateVersion = opt (types.ints.between 1 6) 6;
    system.primaryUser = opt (types.nullOr types.str) null;
    system.defaults = opt (types.attrsOf (types.attrsOf types.anything)) { };
    security.pam.services.sudo_local.touchIdAuth = opt types.bool false;
    users.users = opt (types.attrsOf user) { };
    nix.package = opt types.package "/nix/store/00000000000000000000000000000000-nix";
    nix.settings = opt (types.submodule {
      freeformType = types.attrsOf (types.oneOf [ types.bool types.int types.str (types.listOf types.str) ]);
    }) { };
    environment.systemPackages = opt (types.listOf types.package) [ ];
    launchd.daemons = opt (types.attrsOf daemon) { };
    sops.defaultSopsFile = opt (types.nullOr types.path) null;
    sops.defaultSopsFormat = opt types.str "yaml";
    sops.age.sshKeyPaths = opt (types.listOf types.path) [ ];
    home-manager.useGlobalPkgs = opt types.bool false;
    home-manager.useUserPackages = opt types.bool false;
    home-manager.extraSpecialArgs = opt types.attrs { };
    home-manager.users = opt (types.attrsOf types.deferredModule) { };
  };
}
