# sops-nix with age. A host's age identity is derived from its SSH host key
# (/etc/ssh/ssh_host_ed25519_key), which scripts/new-host makes on the admin's
# machine and nixos-anywhere installs with --extra-files: secrets decrypt on the
# first boot. The host's own secrets are nix/secrets/hosts/<name>.yaml; the ones
# every host shares are nix/secrets/shared.yaml (see .sops.yaml for who can read what).
{
  config,
  lib,
  ...
}:
let
  hostFile = ../secrets/hosts + "/${config.hostSpec.hostName}.yaml";
in
{
  sops = {
    defaultSopsFile = lib.mkIf (builtins.pathExists hostFile) hostFile;
    defaultSopsFormat = "yaml";
    age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
  };
}
