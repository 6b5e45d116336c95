# Runs nix/tests/lib.nix and nix/tests/modules.nix:
#   { passed; failed; names; failures = [ { name; got; want; } ]; }
#
# nixpkgsLib: the nixpkgs `lib/` whose lib.evalModules runs the module tests: the
# vendored copy (nixpkgs-lib/lib) unless scripts/test-nix is given another one
# (FLEET_NIXPKGS_LIB, e.g. the flake input's where the network is there).
{
  nixpkgsLib ? ./nixpkgs-lib/lib,
}:
let
  lib = import nixpkgsLib;
  cases = import ./lib.nix ++ import ./modules.nix { inherit lib; };
  check =
    c:
    if c ? throws then
      let
        r = builtins.tryEval (builtins.deepSeq c.throws c.throws);
      in
      {
        inherit (c) name;
        ok = !r.success;
        got = if r.success then r.value else "<error>";
        want = "<error>";
      }
    else
      {
        inherit (c) name;
        ok = c.got == c.want;
        inherit (c) got want;
      };
  results = map check cases;
  failures = builtins.filter (r: !r.ok) results;
in
{
  passed = builtins.length results - builtins.length failures;
  failed = builtins.length failures;
  names = map (r: r.name) results;
  failures = map (r: { inherit (r) name got want; }) failures;
}
