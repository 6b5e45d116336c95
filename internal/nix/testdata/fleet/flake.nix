# A fleet flake that needs no nixpkgs: each host's system closure is a plain
# derivation at config.system.build.toplevel, as nixosSystem and darwinSystem
# would make it.
{
  outputs = { self }:
    let
      salt = builtins.readFile ./salt;
      host = name: system: script: {
        config.system.build.toplevel = derivation {
          name = "nixos-system-${name}";
          inherit system;
          builder = if system == "aarch64-linux" then builtins.readFile ./busybox else "/bin/sh";
          args = (if system == "aarch64-linux" then [ "sh" ] else [ ]) ++ [ "-c" script ];
          SALT = salt;
        };
      };
    in
    {
      nixosConfigurations = {
        alpha = host "alpha" "x86_64-linux" "echo alpha $SALT > $out";
        beta = host "beta" "x86_64-linux" "echo beta $SALT > $out";
        pi = host "pi" "aarch64-linux" "uname -m > $out";
        broken = { config.system.build.toplevel = throw "broken host: missing option"; };
        hog = { config.system.build.toplevel = builtins.foldl' (acc: i: acc ++ [ (toString i) ]) [ ] (builtins.genList (i: i) 100000000); };
      };
      darwinConfigurations.mac = host "mac" "aarch64-darwin" "echo mac > $out";
    };
}
