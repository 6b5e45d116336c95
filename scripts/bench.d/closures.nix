# Two closures of exactly `n` store paths for the closure diff benchmark,
# made of text files (no builds): a system path referencing n-1 packages.
# Between the "old" and "new" variants a tenth of the packages change
# version and 2% are replaced by others (removed and added); the rest are
# the same paths in both.
{ variant, n ? 5000, salt ? "" }:
let
  letters = "abcdefghijklmnopqrstuvwxyz";
  # word i spells i in base 26 with letters: package names without digits.
  word = i: let c = builtins.substring (i - (i / 26) * 26) 1 letters;
    in if i < 26 then c else word (i / 26 - 1) + c;
  isNew = variant == "new";
  pkg = prefix: i: version:
    builtins.toFile "${prefix}${word i}-${version}" "${salt} ${prefix} ${toString i} ${version}\n";
  k = n / 50;
  common = builtins.genList (i:
    pkg "pkg" i (if isNew && i - (i / 10) * 10 == 0 then "2.${toString i}" else "1.${toString i}"))
    (n - 1 - k);
  only = builtins.genList (i: pkg (if isNew then "added" else "removed") i "1.0") k;
in
builtins.toFile "system-${variant}" (builtins.concatStringsSep "\n" (common ++ only))
