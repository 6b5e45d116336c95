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
#   nix/secrets/agent-tokens/<name>.yaml (the host, the builder host, the admins)
#     farm-agent-token                        the host's token for the builder's API:
#                                             its agent sends it, the builder checks it
#   nix/secrets/poke-token.yaml (every host and the admins)
#     farm-poke-token                         the notifier pokes the agents with it
#
# The builder's admin token (manual triggers) is not wired: add `admin-token` to
# nix/secrets/farm.yaml and set services.farm-builder.adminTokenFile on the host.
{
  config,
  lib,
  ...
}:
let
  farm = import ../farm;
  inherit (farm.settings) remotes;
  flags = import ../lib/flags.nix;
  farmFile = ../secrets/farm.yaml;
  pokeFile = ../secrets/poke-token.yaml;
  agentTokenFile = h: ../secrets/agent-tokens + "/${h}.yaml";
  ownTokenFile = agentTokenFile config.hostSpec.hostName;
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
  # The deployed hosts whose agent token exists (scripts/new-host makes it).
  tokenHosts = builtins.filter (h: builtins.pathExists (agentTokenFile h)) farm.deployHosts;
  pokes = builtins.pathExists pokeFile;
in
{
  config = lib.mkMerge [
    (lib.mkIf builder.enable {
      sops.secrets =
        lib.genAttrs (
          [
            "cache-signing-key"
            "deploy-signing-key"
          ]
          ++ remoteSecrets
        ) (_: fromFarm)
        // builtins.listToAttrs (
          map (h: {
            name = flags.agentTokenCredential h;
            value = {
              sopsFile = agentTokenFile h;
              key = "farm-agent-token";
            };
          }) tokenHosts
        );

      services.farm-builder = {
        signingKeyFile = lib.mkDefault (secret "cache-signing-key");
        deployKeyFile = lib.mkDefault (secret "deploy-signing-key");
        credentials = lib.genAttrs remoteSecrets (n: lib.mkDefault (secret n));
        agentTokenFiles = lib.genAttrs tokenHosts (
          h: lib.mkDefault (secret (flags.agentTokenCredential h))
        );
        flakeDir = lib.mkDefault farm.settings.flakeDir;
        cachePublicUrl = lib.mkDefault farm.settings.cacheUrl;
        settings = {
          public_url = lib.mkDefault farm.settings.builderUrl;
          repository = lib.mkDefault [ (farm.repositoryFor farm.settings builder.credentialsDir) ];
        };
      };
    })

    (lib.mkIf notifier.enable {
      sops.secrets."ntfy-token" = fromFarm;
      services.farm-notifier = {
        ntfyUrl = lib.mkDefault farm.settings.ntfyUrl;
        ntfyTopic = lib.mkDefault farm.settings.ntfyTopic;
        ntfyTokenFile = lib.mkDefault (secret "ntfy-token");
        publicUrl = lib.mkDefault farm.settings.builderUrl;
        # host -> MAC of the hosts the notifier may wake (nix/farm/hosts.json).
        wakeOnLan = builtins.mapAttrs (_: lib.mkDefault) farm.wakeOnLan;
      };
    })

    (lib.mkIf (notifier.enable && pokes) {
      sops.secrets."farm-poke-token".sopsFile = pokeFile;
      services.farm-notifier = {
        pokeTokenFile = lib.mkDefault (secret "farm-poke-token");
        # host -> agent URL of every deployed host (nix/farm: pokePort, domain).
        agents = builtins.mapAttrs (_: lib.mkDefault) farm.agents;
      };
    })

    (lib.mkIf agent.enable {
      services.farm-agent = {
        builderUrl = lib.mkDefault farm.settings.builderUrl;
        cacheUrl = lib.mkDefault config.fleet.farmCache.url;
        cachePublicKey = lib.mkDefault config.fleet.farmCache.publicKey;
        deployPublicKey = lib.mkDefault farm.settings.deployPublicKey;
        # A host the notifier may wake (a MAC in nix/farm/hosts.json) goes back to
        # sleep after an update it was woken for.
        suspendAfterWake = lib.mkDefault (farm.wakeOnLan ? ${config.hostSpec.hostName});
      };
    })

    (lib.mkIf (agent.enable && pokes) {
      sops.secrets."farm-poke-token".sopsFile = pokeFile;
      services.farm-agent = {
        listen = lib.mkDefault ":${toString farm.settings.pokePort}";
        pokeTokenFile = lib.mkDefault (secret "farm-poke-token");
        openFirewall = lib.mkDefault true;
      };
    })

    (lib.mkIf (agent.enable && builtins.pathExists ownTokenFile) {
      sops.secrets."farm-agent-token".sopsFile = ownTokenFile;
      services.farm-agent.tokenFile = lib.mkDefault (secret "farm-agent-token");
    })
  ];
}
