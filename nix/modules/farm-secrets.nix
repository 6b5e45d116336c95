# The farm's own secrets, from sops into the farm's modules as *File options:
#
#   nix/secrets/farm.yaml (the builder host and the admins can read it)
#     webhook-secret     HMAC secret of the forges' webhooks
#     cache-signing-key  the binary cache's ed25519 key (Nix `name:base64`)
#     deploy-signing-key the deploy manifests' key
#     github-token, forgejo-token   commit statuses
#     ntfy-token         the notifier's ntfy access token
#   nix/secrets/hosts/<name>.yaml
#     farm-agent-token   the host's token for the builder's API
#
# The modules themselves know nothing of sops: they take paths. This file is the
# one place that connects the two.
{
  config,
  lib,
  ...
}:
let
  farmFile = ../secrets/farm.yaml;
  hostFile = ../secrets/hosts + "/${config.hostSpec.hostName}.yaml";
  builder = config.services.farm-builder;
  notifier = config.services.farm-notifier;
  agent = config.services.farm-agent;
  secret = name: config.sops.secrets.${name}.path;
  fromFarm = {
    sopsFile = farmFile;
  };
in
{
  config = lib.mkMerge [
    (lib.mkIf builder.enable {
      sops.secrets = {
        "webhook-secret" = fromFarm;
        "cache-signing-key" = fromFarm;
        "deploy-signing-key" = fromFarm;
        "github-token" = fromFarm;
        "forgejo-token" = fromFarm;
      };
      services.farm-builder = {
        signingKeyFile = lib.mkDefault (secret "cache-signing-key");
        deployKeyFile = lib.mkDefault (secret "deploy-signing-key");
        secretFiles = {
          webhook-secret = lib.mkDefault (secret "webhook-secret");
          github-token = lib.mkDefault (secret "github-token");
          forgejo-token = lib.mkDefault (secret "forgejo-token");
        };
      };
    })
    (lib.mkIf notifier.enable {
      sops.secrets."ntfy-token" = fromFarm;
      services.farm-notifier.ntfyTokenFile = lib.mkDefault (secret "ntfy-token");
    })
    (lib.mkIf (agent.enable && builtins.pathExists hostFile) {
      sops.secrets."farm-agent-token".sopsFile = hostFile;
      services.farm-agent.tokenFile = lib.mkDefault (secret "farm-agent-token");
    })
  ];
}
