# A fleet as data (pure: builtins only): its settings, its hosts (discovered from
# a folder tree, each with its spec) and everything derived from them that the
# modules and scripts need. nix/fleet/default.nix is this repository's fleet; the
# tests make others from fixtures.
#
#   import ./fleet.nix { hostsDir; secretsDir; settings; }
{
  hostsDir,
  secretsDir,
  settings,
}:
let
  util = import ./util.nix;
  deployLib = import ./deploy.nix;
  hosts = import ./hosts.nix { inherit hostsDir; };
  inherit (hosts) names plans;
  specOf = n: plans.${n}.spec;
  trim = s: builtins.head (builtins.match "[[:space:]]*([^[:space:]]*)[[:space:]]*" s);
in
rec {
  inherit settings hostsDir names plans;
  inherit (hosts) plan namesOfKind filesOf;

  # Where the secrets are (sops files; lib/sops.nix says who can read which).
  secrets = {
    farm = secretsDir + "/farm.yaml";
    shared = secretsDir + "/shared.yaml";
    poke = secretsDir + "/poke-token.yaml";
    host = n: hostsDir + "/${n}/secrets.yaml";
    agentToken = n: hostsDir + "/${n}/agent-token.yaml";
  };

  # A host's age recipient: nix/hosts/<n>/age.pub, the age form of its SSH host
  # key (scripts/new-host writes it with ssh-to-age).
  ageKeyOf =
    n:
    let
      f = hostsDir + "/${n}/age.pub";
    in
    if builtins.pathExists f then trim (builtins.readFile f) else null;

  # The remotes as git URLs, in order (for hosts that pull the flake themselves).
  gitRemotes = map (r: "${r.url}.git") settings.remotes;

  # The hosts the farm builds, deploys and checks agent tokens of: those that
  # follow it (autoUpgrade = "farm"; darwin and tablet hosts pull unless asked).
  deployHosts = builtins.filter (n: (specOf n).autoUpgrade == "farm") names;

  # host -> how the farm rolls a commit out to it (lib/deploy.nix), for every
  # deployed host: { wave; window; outsideWindow; idleMinutes; asleep; }. The flake
  # exposes it as `farm.deploy`, which the builder reads with one
  # `nix eval --json <flake>#farm.deploy` (no NixOS evaluated, nothing built).
  deploy = util.genAttrs deployHosts (n: deployLib.forBuilder (specOf n).deploy);

  # host -> MAC, for the hosts the notifier may wake.
  wakeOnLan = builtins.listToAttrs (
    builtins.concatMap (
      n:
      let
        mac = (specOf n).wakeOnLan.mac or null;
      in
      if mac == null then
        [ ]
      else
        [
          {
            name = n;
            value = mac;
          }
        ]
    ) names
  );

  # host -> URL of its agent's poke listener, for every deployed host: the host's
  # `agentUrl` quirk, else http://<host>.<domain>:<pokePort>.
  agents = util.genAttrs deployHosts (
    n: (specOf n).agentUrl or "http://${n}.${settings.domain}:${toString settings.pokePort}"
  );

  # The builder's [[repository]] for the fleet (internal/config): every remote with
  # its webhook secret and status token read from the builder's credentials
  # directory, `cloneUrl` as clone_url, `syncRemotes` as sync_remotes.
  repositoryFor = settings: credentialsDir: {
    name = "fleet";
    deploy_branch = settings.branch;
    sync_remotes = settings.syncRemotes or false;
    remote = map (
      r:
      {
        inherit (r) forge url;
        secret_files = [ "${credentialsDir}/webhook-secret-${r.name}" ];
        token_file = "${credentialsDir}/status-token-${r.name}";
      }
      // (if r ? cloneUrl then { clone_url = r.cloneUrl; } else { })
    ) settings.remotes;
  };

  # A login path is mandatory: an admin SSH key or the user's password hash.
  loginAssertion = spec: keys: passwordSecret: {
    assertion = keys != [ ] || passwordSecret != null;
    message = "host ${spec.hostName}: nobody can log in: add an admin SSH key (scripts/init-fleet --admin-ssh-key FILE writes nix/fleet/keys.nix) or a password hash for ${spec.primaryUser} (passwordHashSecrets in nix/fleet/keys.nix)";
  };

  # .sops.yaml, generated: scripts/new-host and scripts/init-fleet write it, a test
  # checks the committed one matches.
  sopsYaml = import ./sops.nix {
    admins = settings.adminAgeKeys;
    hosts = util.genAttrs names ageKeyOf;
    builderHost = settings.builderHost;
    root = "nix";
  };
}
