# The example fleet, needing no nixpkgs: each host's system closure is a
# plain derivation at config.system.build.toplevel, as nixosSystem and
# darwinSystem would make it. hosts.json says which hosts exist, their
# system and a version string to change one host at a time, and, if any
# host has a wave, the rollout settings of farm.deploy.
{
  outputs = { self }:
    let
      hosts = builtins.fromJSON (builtins.readFile ./hosts.json);
      busybox = builtins.readFile ./busybox;
      toplevel = name: h: derivation {
        name = "nixos-system-${name}";
        system = h.system;
        builder = if h.system == "aarch64-linux" then busybox else "/bin/sh";
        args = (if h.system == "aarch64-linux" then [ "sh" ] else [ ]) ++ [ "-c" ''
          export PATH=/usr/bin:/bin
          mkdir -p $out/bin
          echo ${name} ${h.version} > $out/version
          uname -m > $out/machine
          printf '#!/bin/sh\necho "activated ${name} $1" >> "''${FARM_ACTIVATION_LOG:-/dev/null}"\n' > $out/bin/switch-to-configuration
          chmod +x $out/bin/switch-to-configuration
          ${if (h.work or 0) > 0 then "i=0; while [ $i -lt ${toString h.work} ]; do i=$((i+1)); done; " else ""}${if (h.sleep or 0) > 0 then "sleep ${toString h.sleep}" else "true"}
          ${if h.fail or false then "echo build of ${name} fails on purpose; exit 1" else "true"}
        '' ];
      };
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
