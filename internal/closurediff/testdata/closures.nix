# Two system closures for the oracle test, built without nixpkgs: every
# package is a derivation run by /bin/sh that writes `size` KiB of zeros.
# `variant` is "old" or "new"; `salt` keeps one test's paths apart from
# another's.
{ variant, salt ? "" }:
let
  pkg = { name, size ? 1, outputs ? [ "out" ], refs ? [ ], extra ? "" }: derivation {
    inherit name outputs;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" ''
      export PATH=/usr/bin:/bin
      for o in ${builtins.concatStringsSep " " outputs}; do
        eval dir=\$$o
        mkdir -p $dir
        head -c ${toString (size * 1024)} /dev/zero > $dir/data
        echo ${salt} ${extra} ${builtins.concatStringsSep " " (map toString refs)} > $dir/refs
      done
    '' ];
  };
  glibc = pkg { name = "glibc-2.40"; size = 40; };
  common = [
    glibc
    (pkg { name = "unit-script"; refs = [ glibc ]; })
  ];
  old = common ++ [
    (pkg { name = "linux-6.12.9"; size = 100; refs = [ glibc ]; })
    (pkg { name = "foo-1.0"; size = 10; outputs = [ "out" "man" ]; })
    (pkg { name = "bar-unstable-2024-01-01"; size = 5; })
    (pkg { name = "oldpkg-2.0"; size = 30; })
    (pkg { name = "zlib-1.3"; size = 20; })
    (pkg { name = "tiny-1.0"; size = 2; })
    (pkg { name = "python3-3.11"; size = 50; })
    (pkg { name = "python3-3.12"; size = 50; })
    (pkg { name = "openssl-3.0"; size = 9; })
    (pkg { name = "etc"; size = 3; })
    (pkg { name = "gone"; size = 1; })
    (pkg { name = "hello-unstable"; })
  ];
  new = common ++ [
    (pkg { name = "linux-6.12.10"; size = 110; refs = [ glibc ]; })
    (pkg { name = "foo-1.1"; size = 10; outputs = [ "out" "man" ]; })
    (pkg { name = "bar-unstable-2024-02-01"; size = 5; })
    (pkg { name = "newpkg-0.1"; size = 12; })
    (pkg { name = "firmware"; size = 64; })
    (pkg { name = "zlib-1.3"; size = 40; })
    (pkg { name = "tiny-1.0"; size = 3; })
    (pkg { name = "python3-3.12"; size = 50; })
    (pkg { name = "python3-3.13"; size = 60; })
    (pkg { name = "openssl-3.0"; size = 9; })
    (pkg { name = "openssl-3.3"; size = 9; })
    (pkg { name = "etc"; size = 3; extra = "changed"; })
    (pkg { name = "Caps-Bar-2"; })
    (pkg { name = "perl5.40.0-JSON-4.10"; })
  ];
  pkgs = if variant == "old" then old else new;
  version = if variant == "old" then "24.11.1" else "24.11.2";
in
pkg {
  name = "nixos-system-stolas-${version}";
  refs = builtins.concatMap (p: map (o: p.${o}) p.outputs) pkgs;
}
