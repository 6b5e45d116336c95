# The roles: every file of nix/roles/ is one, named after the file. Each is
#   { kind; description; defaults; module; }
# kind "nixos" or "darwin" (which system builder), description (for new-host and
# the docs), defaults (the hostSpec values a host inherits) and module (what the
# role sets beyond the hostSpec, at the role priority). Pure: builtins only.
let
  util = import ./util.nix;
  dir = ../roles;
  files = builtins.filter (f: util.hasSuffix ".nix" f) (builtins.attrNames (builtins.readDir dir));
in
builtins.listToAttrs (
  map (f: {
    name = util.removeSuffix ".nix" f;
    value = import (dir + "/${f}");
  }) files
)
