# Resolving a host's spec: the few lines of nix/hosts/<name>/default.nix on top of
# its role's defaults, and the fleet's one rule for host and user names. Pure:
# builtins only. host-spec.nix (the typed option), flags.nix, lib/fleet.nix and
# scripts/new-host all use the rules below; nix/tests checks the host-name rule
# against testdata/hostnames.json, the table the Go rule is tested against too.
{ roles ? import ./roles.nix }:
let
  util = import ./util.nix;
  deploy = import ./deploy.nix;
  inherit (builtins)
    attrNames
    elem
    filter
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

  # A host name is one DNS label: lowercase letters, digits and '-', 1 to 63
  # characters, neither starting nor ending with '-'.
  hostNamePattern = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?";
  validHostName = h: isString h && match hostNamePattern h != null;

  # A user name as NixOS (shadow) takes it.
  userNamePattern = "[a-z_][a-z0-9_-]{0,31}";
  validUserName = u: isString u && match userNamePattern u != null;

  # The role entry for `role`, or a clear evaluation error that lists the roles.
  resolveRole =
    name: role:
    if !(isString role) then
      fail name "`role` must be set to one of: ${util.showList roleNames}"
    else if roles ? ${role} then
      roles.${role}
    else
      fail name "unknown role \"${role}\"; expected one of: ${util.showList roleNames}";

  # conflicts spec: the hostSpec flags that make no sense together or on this
  # kind of system, and what is wrong with its `deploy` settings (lib/deploy.nix),
  # as messages (empty when the spec is consistent). Every flag
  # works in every role where it makes sense; where it does not, this is the
  # evaluation error (spec.resolve throws it; host-spec.nix asserts it, so a flag
  # set in any file of the host folder is checked too).
  conflicts =
    s:
    let
      darwin = s.kind == "darwin";
      rules = [
        {
          bad = s.headless && s.gui;
          msg = "`headless` and `gui` exclude each other: a headless host has no graphical session";
        }
        {
          bad = s.gaming && !s.gui;
          msg = "`gaming` needs `gui = true`";
        }
        {
          bad = s.touch && !s.gui;
          msg = "`touch` needs `gui = true`";
        }
        {
          bad = s.gaming && s.system != "x86_64-linux";
          msg = "`gaming` (Steam) exists only on x86_64-linux, not on ${s.system}";
        }
        {
          bad = darwin && s.headless;
          msg = "`headless` is for NixOS hosts; a Mac has its own session";
        }
        {
          bad = darwin && s.touch;
          msg = "`touch` is for NixOS hosts";
        }
        {
          bad = darwin && s.autoUpgrade == "farm";
          msg = "`autoUpgrade = \"farm\"` needs the farm's agent, which is Linux-only: use \"pull\" or \"none\"";
        }
        {
          bad = darwin && s.wakeOnLan.enable;
          msg = "`wakeOnLan` is armed by NixOS; on a Mac set it in the system settings";
        }
      ];
    in
    map (r: r.msg) (filter (r: r.bad) rules) ++ deploy.problems (s.deploy or deploy.defaults);

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
      spec =
        util.recursiveMerge role.defaults (
          values
          // {
            hostName = values.hostName or name;
          }
        )
        // {
          inherit (role) kind;
          deploy =
            if isAttrs (values.deploy or { }) then
              deploy.resolve (role.defaults.deploy or { } // (values.deploy or { }))
            else
              fail name "`deploy` must be an attribute set, such as { wave = 0; window = \"03:00-05:00\"; }";
        };
      problems = conflicts spec;
    in
    if !(validHostName name) then
      fail name "the folder name is not a valid host name (lowercase letters, digits, '-'; at most 63)"
    else if !(validHostName spec.hostName) then
      fail name "hostName \"${spec.hostName}\" is not a valid host name (lowercase letters, digits, '-')"
    else if !(validUserName user) then
      fail name "`primaryUser` must be set to a user name such as \"rain\""
    else if !(elem spec.system systems.${role.kind}) then
      fail name "role \"${values.role}\" builds a ${role.kind} system; `system` must be one of: ${util.showList systems.${role.kind}}, not \"${spec.system}\""
    else if !(elem spec.autoUpgrade [ "farm" "pull" "none" ]) then
      fail name "`autoUpgrade` must be \"farm\", \"pull\" or \"none\""
    else if problems != [ ] then
      fail name (util.showList problems)
    else
      spec;
}
