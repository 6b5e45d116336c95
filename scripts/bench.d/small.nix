# A closure of 5,000 small paths for the push benchmark: 50 groups of 100
# tiny source files each, one path referencing the 50 groups.
{ dir }:
let
  range = n: builtins.genList (i: i) n;
  group = g: derivation {
    name = "bench-group-${toString g}";
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" ("echo " + builtins.concatStringsSep " "
      (map (i: builtins.path { path = dir + "/f-${toString g}-${toString i}"; }) (range 100)) + " > $out") ];
  };
in
derivation {
  name = "bench-small-closure";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ "-c" ("echo " + builtins.concatStringsSep " " (map group (range 50)) + " > $out") ];
}
