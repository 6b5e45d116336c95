# Small helpers over builtins only, so everything in nix/lib evaluates without nixpkgs
# (the tests in nix/tests run with `nix-instantiate --eval` on a machine with no nixpkgs).
let
  inherit (builtins)
    attrNames
    concatMap
    concatStringsSep
    elem
    filter
    foldl'
    isAttrs
    listToAttrs
    stringLength
    substring
    ;
in
rec {
  # The priority roles and features set NixOS options at: above nixpkgs' own
  # lib.mkDefault (1000), so a role never collides with a default nixpkgs sets
  # (two different values at one priority fail to merge), and below a plain value
  # (100), so a host's plain value still wins without lib.mkForce.
  rolePriority = 900;

  hasSuffix =
    suffix: s:
    let
      ls = stringLength s;
      lx = stringLength suffix;
    in
    ls >= lx && substring (ls - lx) lx s == suffix;

  hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;

  removeSuffix =
    suffix: s: if hasSuffix suffix s then substring 0 (stringLength s - stringLength suffix) s else s;

  filterAttrs =
    pred: set:
    listToAttrs (
      concatMap (
        n:
        if pred n set.${n} then
          [
            {
              name = n;
              value = set.${n};
            }
          ]
        else
          [ ]
      ) (attrNames set)
    );

  genAttrs =
    names: f:
    listToAttrs (
      map (n: {
        name = n;
        value = f n;
      }) names
    );

  # recursiveMerge a b: b's values win; attribute sets present on both sides merge.
  recursiveMerge =
    a: b:
    a
    // builtins.mapAttrs (
      n: v: if isAttrs v && a ? ${n} && isAttrs a.${n} && !(v ? _type) then recursiveMerge a.${n} v else v
    ) b;

  # A readable list for error messages: "a, b, c".
  showList = xs: concatStringsSep ", " xs;

  # The names in `names` that are not in `allowed`.
  unknownNames = allowed: names: filter (n: !(elem n allowed)) names;

  # Apply f to every leaf (non-attrset value) of a nested attribute set.
  mapLeaves = f: set: builtins.mapAttrs (_: v: if isAttrs v && !(v ? _type) then mapLeaves f v else f v) set;

  sum = foldl' (a: b: a + b) 0;
}
