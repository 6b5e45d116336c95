# The example fleet, needing no nixpkgs: each host's system closure is a
# plain derivation at config.system.build.toplevel, as nixosSystem and
# darwinSystem would make it. hosts.json says which hosts exist, their
# system and a version string to change one host at a time; a host's
# "packages" ({ "hello": "2.12" }) become store paths "hello-2.12" in its
# closure, so closure diffs have versions to compare; and, if any host has a
# wave, the rollout settings of farm.deploy.
{
  outputs = { self }:
    let
      hosts = builtins.fromJSON (builtins.readFile ./hosts.json);
      busybox = builtins.readFile ./busybox;
      shell = system: script: {
        inherit system;
        builder = if system == "aarch64-linux" then busybox else "/bin/sh";
        args = (if system == "aarch64-linux" then [ "sh" ] else [ ]) ++ [ "-c" script ];
      };
      package = system: pname: version: derivation (shell system ''
        export PATH=/usr/bin:/bin
        mkdir -p $out/share
        echo ${pname} ${version} > $out/share/${pname}
      '' // { name = "${pname}-${version}"; });
      toplevel = name: h: derivation (shell h.system ''
          export PATH=/usr/bin:/bin
          mkdir -p $out/bin
          ${builtins.concatStringsSep "\n" (builtins.attrValues (builtins.mapAttrs
            (p: v: "echo ${package h.system p v} >> $out/packages") (h.packages or { })))}
          echo ${name} ${h.version} > $out/version
          uname -m > $out/machine
          printf '#!/bin/sh\necho "activated ${name} $1" >> "''${FARM_ACTIVATION_LOG:-/dev/null}"\n' > $out/bin/switch-to-configuration
          chmod +x $out/bin/switch-to-configuration
          ${if (h.work or 0) > 0 then "i=0; while [ $i -lt ${toString h.work} ]; do i=$((i+1)); done; " else ""}${if (h.sleep or 0) > 0 then "sleep ${toString h.sleep}" else "true"}
          ${if h.fail or false then "echo build of ${name} fails on purpose; exit 1" else "true"}
        '' // { name = "nixos-system-${name}"; });
      host = name: h:
        if h.broken or false
        then { config.system.build.toplevel = throw "host ${name}: option does not exist"; }
        else { config.system.build.toplevel = toplevel name h; };
      of = kind: builtins.listToAttrs (map (n: { name = n; value = host n hosts.${n}; })
        (builtins.filter (n: (hosts.${n}.kind or "nixos") == kind) (builtins.attrNames hosts)));
      # farm.deploy (the shape of nix/lib/deploy.nix) only when a host sets
      # a wave: a fleet without one deploys every host at once.
      waved = builtins.any (n: hosts.${n} ? wave) (builtins.attrNames hosts);
      deploy = builtins.mapAttrs (n: h: {
        wave = h.wave or 0;
        window = h.window or "always";
        outsideWindow = h.outsideWindow or "boot";
        idleMinutes = 15;
        asleep = h.asleep or "wait";
      }) hosts;
    in
    {
      nixosConfigurations = of "nixos";
      darwinConfigurations = of "darwin";
    } // (if waved then { farm.deploy = deploy; } else { });
}
