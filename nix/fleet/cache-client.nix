# Every host trusts the farm's binary cache: its URL as an extra substituter and
# its public key as a trusted key (both from nix/fleet/settings.nix). Works in NixOS
# and nix-darwin (both have nix.settings).
{
  config,
  lib,
  fleet,
  ...
}:
let
  farm = fleet;
  cfg = config.fleet.farmCache;
in
{
  options.fleet.farmCache = {
    enable = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Whether this host substitutes from the farm's binary cache.";
    };
    url = lib.mkOption {
      type = lib.types.str;
      default = farm.settings.cacheUrl;
      description = "The farm's binary cache.";
    };
    publicKey = lib.mkOption {
      type = lib.types.str;
      default = farm.settings.cachePublicKey;
      description = "The key the farm signs its cache with (`name:base64`).";
    };
  };

  config = lib.mkIf cfg.enable {
    nix.settings = {
      extra-substituters = [ cfg.url ];
      extra-trusted-public-keys = [ cfg.publicKey ];
    };
  };
}
