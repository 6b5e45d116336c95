# Resolving a host's spec: the few lines of nix/hosts/<name>/default.nix on top of
# its role's defaults. Pure: builtins only.
{ roles ? import ./roles.nix }:
let
  util = import ./util.nix;
  inherit (builtins)
    attrNames
    elem
    isAttrs
    isString
    match
    ;

  roleNames = attrNames roles;

  systems = {
    nixos = [
      "x86_64-linux"
      "aarch64-linux"
    ];
    darwin = [
      "x86_64-darwin"
      "aarch64-darwin"
    ];
  };

  fail = name: msg: throw "host ${name}: ${msg}";
in
rec {
  inherit roleNames systems;
  allSystems = systems.nixos ++ systems.darwin;

  # The role entry for `role`, or a clear evaluation error that lists the roles.
  resolveRole =
    name: role:
    if !(isString role) then
      fail name "`role` must be set to one of: ${util.showList roleNames}"
    else if roles ? ${role} then
      roles.${role}
    else
      fail name "unknown role \"${role}\"; expected one of: ${util.showList roleNames}";

  # resolve name hostValues: the full spec of a host. Role defaults first, then the
  # host's own values (recursively, so `wakeOnLan.mac = ...` keeps the role's
  # `wakeOnLan.enable`). hostName defaults to the folder name.
  resolve =
    name: hostValues:
    let
      values =
        if isAttrs hostValues then hostValues else fail name "default.nix must be an attribute set";
      role = resolveRole name (values.role or null);
      user = values.primaryUser or null;
      spec = util.recursiveMerge role.defaults (
        values
        // {
          hostName = values.hostName or name;
        }
      );
    in
    if match "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?" name == null then
      fail name "the folder name is not a valid host name (lowercase letters, digits, '-')"
    else if !(isString user) || match "[a-z_][a-z0-9_-]*" user == null then
      fail name "`primaryUser` must be set to a user name such as \"rain\""
    else if !(elem spec.system systems.${role.kind}) then
      fail name "role \"${values.role}\" builds a ${role.kind} system; `system` must be one of: ${util.showList systems.${role.kind}}, not \"${spec.system}\""
    else if !(elem spec.autoUpgrade [ "farm" "pull" "none" ]) then
      fail name "`autoUpgrade` must be \"farm\", \"pull\" or \"none\""
    else
      spec // { inherit (role) kind; };
}
