# The fleet's glue: the fleet's data (nix/fleet: URLs, public keys, remotes, the
# hosts' MACs) and the sops secrets, set as defaults (lib.mkDefault) of the farm's
# generic modules (nix/services). The modules know nothing of sops or of this
# fleet; this file is the one place that connects them. A host's plain value wins.
#
#   nix/secrets/farm.yaml (the builder host and the admins can read it)
#     cache-signing-key, deploy-signing-key   the cache's and the manifests' keys
#     webhook-secret-<remote>                 each forge's webhook HMAC secret
#     status-token-<remote>                   each forge's token for commit statuses
#     ntfy-token                              the notifier's ntfy access token
#     remote-builder-ssh-key                  the builder host's SSH key for its remote
#                                             build machines (settings.buildMachines)
#   nix/hosts/<name>/agent-token.yaml (the host, the builder host, the admins)
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
  fleet,
  ...
}:
let
  farm = fleet;
  inherit (farm.settings) remotes;
  flags = import ../lib/flags.nix;
  farmFile = fleet.secrets.farm;
  pokeFile = fleet.secrets.poke;
  agentTokenFile = fleet.secrets.agentToken;
  url = farm.settings.builderUrl;
  https = lib.hasPrefix "https://" url;
  urlHost = builtins.head (builtins.match "[a-z]+://([^/:]+).*" url);
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
  buildMachines = farm.settings.buildMachines or [ ];
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
        # An https:// builder URL needs something that terminates TLS: Caddy
        # in front of the builder (services.farm-builder.tls).
        tls.enable = lib.mkDefault https;
        tls.hostName = lib.mkDefault urlHost;
        settings = {
          public_url = lib.mkDefault farm.settings.builderUrl;
          repository = lib.mkDefault [ (farm.repositoryFor farm.settings builder.credentialsDir) ];
        };
      };
    })

    # The farm's builds run through the Nix daemon, so remote build machines are
    # the daemon's: nix.buildMachines, with the SSH key from sops (read by the
    # daemon, root). The builder itself gets no `builders` flag.
    (lib.mkIf (builder.enable && buildMachines != [ ]) {
      sops.secrets."remote-builder-ssh-key" = fromFarm;
      nix.distributedBuilds = lib.mkDefault true;
      nix.buildMachines = lib.mkDefault (
        map (
          m:
          {
            protocol = "ssh-ng";
            sshKey = secret "remote-builder-ssh-key";
          }
          // m
        ) buildMachines
      );
    })

    (lib.mkIf notifier.enable {
      sops.secrets."ntfy-token" = fromFarm;
      services.farm-notifier = {
        ntfyUrl = lib.mkDefault farm.settings.ntfyUrl;
        ntfyTopic = lib.mkDefault farm.settings.ntfyTopic;
        ntfyTokenFile = lib.mkDefault (secret "ntfy-token");
        publicUrl = lib.mkDefault farm.settings.builderUrl;
        # host -> MAC of the hosts the notifier may wake (their wakeOnLan.mac).
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

    {
      services.fleet-pull = {
        remotes = lib.mkDefault farm.gitRemotes;
        branch = lib.mkDefault farm.settings.branch;
        flakeDir = lib.mkDefault farm.settings.flakeDir;
        keepGenerations = lib.mkDefault farm.settings.keepGenerations;
      };
    }

    (lib.mkIf agent.enable {
      services.farm-agent = {
        keepGenerations = lib.mkDefault farm.settings.keepGenerations;
        builderUrls = lib.mkDefault [ farm.settings.builderUrl ];
        cacheUrl = lib.mkDefault config.fleet.farmCache.url;
        cachePublicKey = lib.mkDefault config.fleet.farmCache.publicKey;
        deployPublicKey = lib.mkDefault farm.settings.deployPublicKey;
        # A host the notifier may wake (a wakeOnLan.mac in its default.nix) goes back to
        # sleep after an update it was woken for.
        suspendAfterWake = lib.mkDefault (farm.wakeOnLan ? ${config.hostSpec.hostName});
      }
      # The host's maintenance window (hostSpec.deploy, lib/deploy.nix; its role's
      # defaults: a desktop switches only when nobody is at the keyboard, a server
      # always, a Pi at night); the wave is the builder's business (the flake output
      # farm.deploy). On unless the fleet sets `agentWindows = false` in
      # nix/fleet/settings.nix (for agents older than the window flags: an agent
      # given a flag it does not know refuses to start).
      // lib.optionalAttrs ((farm.settings.agentWindows or true) && config.hostSpec ? deploy) {
        window = lib.mkDefault config.hostSpec.deploy.window;
        outsideWindow = lib.mkDefault config.hostSpec.deploy.outsideWindow;
        idleMinutes = lib.mkDefault config.hostSpec.deploy.idleMinutes;
        timeZone = lib.mkDefault (config.time.timeZone or null);
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
    (lib.mkIf builder.enable {
      assertions = [
        {
          assertion = !https || builder.tls.enable;
          message = "the fleet's builderUrl (${url}) is https, but nothing terminates TLS on ${config.networking.hostName}: keep services.farm-builder.tls.enable, or use an http:// URL in nix/fleet/settings.nix.";
        }
      ];
    })
  ];
}
