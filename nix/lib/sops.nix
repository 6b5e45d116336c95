# .sops.yaml from the fleet: who can read which secret. Pure: builtins only.
#
#   nix/secrets/farm.yaml                 the admins and the builder host
#   nix/hosts/<n>/secrets.yaml            the admins and that host
#   nix/hosts/<n>/agent-token.yaml        the admins, that host and the builder host
#                                         (its agent sends the token, the builder checks it)
#   nix/secrets/{shared,poke-token}.yaml  the admins and every host
#
# admins: name -> age public key; hosts: name -> age public key (or null: a host
# without a key yet reads nothing).
{
  admins,
  hosts,
  builderHost,
  root ? "nix",
}:
let
  inherit (builtins)
    attrNames
    concatStringsSep
    filter
    sort
    ;
  hostNames = sort (a: b: a < b) (filter (n: hosts.${n} != null) (attrNames hosts));
  adminNames = sort (a: b: a < b) (attrNames admins);
  adminRefs = map (a: "*admin_${a}") adminNames;
  hostRef = h: "*host_${h}";
  builder = if builtins.elem builderHost hostNames then [ (hostRef builderHost) ] else [ ];
  unique = xs: builtins.foldl' (acc: x: if builtins.elem x acc then acc else acc ++ [ x ]) [ ] xs;
  rule = regex: readers: [
    "  - path_regex: ${regex}"
    "    key_groups:"
    "      - age:"
  ]
  ++ map (r: "          - ${r}") (unique readers);
  lines = [
    "# Generated from the fleet by nix/lib/sops.nix (scripts/init-fleet and"
    "# scripts/new-host write it; scripts/test-nix checks it is current): do not edit."
    "keys:"
  ]
  ++ map (a: "  - &admin_${a} ${admins.${a}}") adminNames
  ++ map (h: "  - &host_${h} ${hosts.${h}}") hostNames
  ++ [ "creation_rules:" ]
  ++ rule "${root}/secrets/farm\\.yaml$" (adminRefs ++ builder)
  ++ builtins.concatMap (h: rule "${root}/hosts/${h}/secrets\\.yaml$" (adminRefs ++ [ (hostRef h) ])) hostNames
  ++ builtins.concatMap (
    h: rule "${root}/hosts/${h}/agent-token\\.yaml$" (adminRefs ++ [ (hostRef h) ] ++ builder)
  ) hostNames
  ++ rule "${root}/secrets/(shared|poke-token)\\.yaml$" (adminRefs ++ map hostRef hostNames);
in
concatStringsSep "\n" lines + "\n"
