# Host discovery: every folder under nix/hosts/ with a default.nix is a host. No
# list to maintain: adding the folder adds the host. Pure: builtins only.
{
  hostsDir,
  roles ? import ./roles.nix,
}:
let
  util = import ./util.nix;
  spec = import ./spec.nix { inherit roles; };
  inherit (builtins)
    attrNames
    filter
    pathExists
    readDir
    sort
    ;

  entries = if pathExists hostsDir then readDir hostsDir else { };
in
rec {
  # The host names, sorted.
  names = sort (a: b: a < b) (
    filter (n: entries.${n} == "directory" && pathExists (hostsDir + "/${n}/default.nix")) (
      attrNames entries
    )
  );

  # The files a host imports on top of its role, sorted by name: every regular
  # `.nix` file of its folder except default.nix (the spec itself) and files
  # whose name starts with `_` (helpers that another file imports by hand).
  filesOf =
    name:
    let
      dir = hostsDir + "/${name}";
      here = readDir dir;
      picked = filter (
        f:
        here.${f} == "regular"
        && util.hasSuffix ".nix" f
        && f != "default.nix"
        && !(util.hasPrefix "_" f)
      ) (attrNames here);
    in
    map (f: dir + "/${f}") (sort (a: b: a < b) picked);

  # Everything mkHost needs to know about one host, without evaluating NixOS.
  plan =
    name:
    let
      values = import (hostsDir + "/${name}/default.nix");
      resolved = spec.resolve name values;
      role = roles.${resolved.role};
      # The host's own values (default.nix), set at normal priority so they win
      # over the role's defaults.
      hostValues = values // {
        hostName = values.hostName or name;
        inherit (role) kind;
      };
      files = filesOf name;
    in
    {
      inherit name hostValues files;
      inherit (resolved) system kind;
      spec = resolved;
      roleModule = role.module;
      # The fleet's modules of this host, in order (the flake adds its inputs'):
      # the typed hostSpec, the features of its kind (each follows its flag), the
      # role's module and its hostSpec defaults (lib.mkDefault), default.nix as
      # the hostSpec, then every other .nix file of its folder.
      modules = [
        ../fleet/host-spec.nix
        (if role.kind == "darwin" then ../features/darwin.nix else ../features/nixos.nix)
        role.module
        (
          { lib, ... }:
          {
            hostSpec = util.mapLeaves lib.mkDefault role.defaults;
          }
        )
        { hostSpec = hostValues; }
      ]
      ++ files;
    };

  # name -> plan, for every host.
  plans = util.genAttrs names plan;

  # The hosts of one kind ("nixos" or "darwin").
  namesOfKind = kind: filter (n: (plan n).kind == kind) names;
}
