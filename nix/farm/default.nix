# The farm's view of the fleet, as data (pure: builtins only).
#
#   settings   nix/farm/settings.nix: URLs, public keys, remotes
#   hosts      nix/farm/hosts.json: per host, whether the farm deploys it, the
#              Wake-on-LAN MAC the notifier wakes it with and (optional) `agentUrl`,
#              where the notifier pokes its agent. scripts/new-host adds to it.
let
  settings = import ./settings.nix;
  hosts = builtins.fromJSON (builtins.readFile ./hosts.json);
  names = builtins.attrNames hosts;
in
{
  inherit settings hosts;

  # The remotes as git URLs, in order (for hosts that pull the flake themselves).
  gitRemotes = map (r: "${r.url}.git") settings.remotes;

  # The hosts the builder builds and deploys, sorted.
  deployHosts = builtins.filter (n: hosts.${n}.deploy or false) names;

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

  # host -> URL of its agent's poke listener, for every deployed host: from
  # hosts.json's `agentUrl`, else http://<host>.<domain>:<pokePort>.
  agents = builtins.listToAttrs (
    map (n: {
      name = n;
      value = hosts.${n}.agentUrl or "http://${n}.${settings.domain}:${toString settings.pokePort}";
    }) (builtins.filter (n: hosts.${n}.deploy or false) names)
  );

  # host -> MAC, for the hosts that can be woken.
  wakeOnLan = builtins.listToAttrs (
    builtins.concatMap (
      n:
      let
        w = hosts.${n}.wakeOnLan or null;
      in
      if w == null then
        [ ]
      else
        [
          {
            name = n;
            value = w.mac;
          }
        ]
    ) names
  );
}
