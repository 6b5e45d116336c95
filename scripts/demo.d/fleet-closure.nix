# A small closure for the cache's real-Nix tests, needing no nixpkgs:
#   leaf  (x86_64-linux): files, an executable, a symlink, a 5 MiB random file
#   mid   (x86_64-linux): references leaf
#   arm   (aarch64-linux, built under qemu by a static busybox): references mid
{ salt, busybox }:
let
  sh = name: script: derivation {
    inherit name;
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" ("export PATH=/usr/bin:/bin; " + script) ];
  };
  leaf = sh "leaf-${salt}" ''
    mkdir -p $out/bin $out/share
    echo "leaf ${salt}" > $out/share/data
    printf '#!/bin/sh\necho hello\n' > $out/bin/hello
    chmod +x $out/bin/hello
    ln -s share/data $out/link
    head -c 5242880 /dev/urandom > $out/share/random
  '';
  mid = sh "mid-${salt}" ''
    mkdir -p $out
    echo ${leaf} > $out/leaf-path
  '';
  arm = derivation {
    name = "arm-${salt}";
    system = "aarch64-linux";
    builder = busybox;
    args = [ "sh" "-c" "mkdir $out && uname -m > $out/machine && echo ${mid} > $out/mid-path" ];
  };
in
arm
