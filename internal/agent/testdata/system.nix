# A stand-in for a NixOS system closure: bin/switch-to-configuration records
# "activated <name> <mode>" in $FARM_ACTIVATION_LOG and fails when asked to;
# an `unhealthy` marker file lets a test's health check fail. It references
# a second path, so realising it needs a closure, not one path.
{ name, salt, failActivation ? "false", unhealthy ? "false" }:
let
  etc = derivation {
    name = "etc-${name}";
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" "export PATH=/usr/bin:/bin; mkdir -p $out; echo ${name} ${salt} > $out/issue" ];
  };
in
derivation {
  name = "nixos-system-${name}";
  system = "x86_64-linux";
  builder = "/bin/sh";
  inherit etc;
  args = [ "-c" ''
    export PATH=/usr/bin:/bin
    mkdir -p $out/bin
    ln -s $etc $out/etc
    echo ${name} ${salt} > $out/version
    ${if unhealthy == "true" then "touch $out/unhealthy" else "true"}
    cat > $out/bin/switch-to-configuration <<SCRIPT
    #!/bin/sh
    echo "activated ${name} \$1" >> "\''${FARM_ACTIVATION_LOG:-/dev/null}"
    ${if failActivation == "true" then "echo 'activation of ${name} fails on purpose' >&2; exit 1" else "exit 0"}
    SCRIPT
    chmod +x $out/bin/switch-to-configuration
  '' ];
}
