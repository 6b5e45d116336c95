# The farm's view of the fleet, as data (pure: builtins only).
#
#   settings   nix/farm/settings.nix: URLs, public keys, remotes
#   hosts      nix/farm/hosts.json: per host, whether the farm deploys it and the
#              Wake-on-LAN MAC the notifier wakes it with. scripts/new-host adds to it.
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
