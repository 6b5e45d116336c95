# The fleet's glue: nix/farm (URLs, public keys, remotes, the hosts' MACs) and the
# sops secrets, set as defaults (lib.mkDefault) of the farm's generic modules. The
# modules know nothing of sops or of this fleet; this file is the one place that
# connects them. A host's plain value still wins.
#
#   nix/secrets/farm.yaml (the builder host and the admins can read it)
#     cache-signing-key, deploy-signing-key   the cache's and the manifests' keys
#     webhook-secret-<remote>                 each forge's webhook HMAC secret
#     status-token-<remote>                   each forge's token for commit statuses
#     ntfy-token                              the notifier's ntfy access token
#   nix/secrets/hosts/<name>.yaml
#     farm-agent-token                        the host's token for the builder's API
{
  config,
  lib,
  ...
}:
let
  farm = import ../farm;
  inherit (farm.settings) remotes;
  farmFile = ../secrets/farm.yaml;
  hostFile = ../secrets/hosts + "/${config.hostSpec.hostName}.yaml";
  builder = config.services.farm-builder;
  notifier = config.services.farm-notifier;
  agent = config.services.farm-agent;
  secret = name: config.sops.secrets.${name}.path;
  fromFarm = {
    sopsFile = farmFile;
  };
  remoteSecrets = lib.concatMap (r: [
    "webhook-secret-${r.name}"
    "status-token-${r.name}"
  ]) remotes;
in
{
  config = lib.mkMerge [
    (lib.mkIf builder.enable {
      sops.secrets = lib.genAttrs (
        [
          "cache-signing-key"
          "deploy-signing-key"
        ]
        ++ remoteSecrets
      ) (_: fromFarm);

      services.farm-builder = {
        signingKeyFile = lib.mkDefault (secret "cache-signing-key");
        deployKeyFile = lib.mkDefault (secret "deploy-signing-key");
        credentials = lib.genAttrs remoteSecrets (n: lib.mkDefault (secret n));
        settings = {
          public_url = lib.mkDefault farm.settings.builderUrl;
          repository = lib.mkDefault [
            {
              name = "fleet";
              deploy_branch = farm.settings.branch;
              remote = map (r: {
                inherit (r) forge url;
                secret_files = [ "${builder.credentialsDir}/webhook-secret-${r.name}" ];
                token_file = "${builder.credentialsDir}/status-token-${r.name}";
              }) remotes;
            }
          ];
        };
      };
    })

    (lib.mkIf notifier.enable {
      sops.secrets."ntfy-token" = fromFarm;
      services.farm-notifier = {
        ntfyUrl = lib.mkDefault farm.settings.ntfyUrl;
        ntfyTopic = lib.mkDefault farm.settings.ntfyTopic;
        ntfyTokenFile = lib.mkDefault (secret "ntfy-token");
        # host -> MAC of the hosts the notifier may wake (nix/farm/hosts.json).
        settings.wake_on_lan = lib.mkDefault farm.wakeOnLan;
      };
    })

    (lib.mkIf agent.enable {
      services.farm-agent = {
        builderUrl = lib.mkDefault farm.settings.builderUrl;
        cacheUrl = lib.mkDefault config.fleet.farmCache.url;
        cachePublicKey = lib.mkDefault config.fleet.farmCache.publicKey;
        deployPublicKey = lib.mkDefault farm.settings.deployPublicKey;
      };
    })

    (lib.mkIf (agent.enable && builtins.pathExists hostFile) {
      sops.secrets."farm-agent-token".sopsFile = hostFile;
      services.farm-agent.tokenFile = lib.mkDefault (secret "farm-agent-token");
    })
  ];
}
