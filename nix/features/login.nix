# How a person gets in: the admins' SSH keys (nix/fleet/keys.nix, written by
# scripts/init-fleet) for the primary user and root, and the primary user's hashed
# password when the fleet has one (`passwordHashSecrets.<user>`: its key in
# nix/secrets/shared.yaml). A host with neither is an evaluation error: with
# password SSH off it could never be reached. (nix-darwin: features/darwin.nix.)
{
  config,
  lib,
  fleet,
  ...
}:
let
  user = config.hostSpec.primaryUser;
  keys = fleet.settings.adminSshKeys;
  secret = fleet.settings.passwordHashSecrets.${user} or null;
in
{
  assertions = [ (fleet.loginAssertion config.hostSpec keys secret) ];

  users.users.root.openssh.authorizedKeys.keys = keys;
  users.users.${user} = {
    isNormalUser = true;
    extraGroups = [ "wheel" ] ++ lib.optional config.networking.networkmanager.enable "networkmanager";
    openssh.authorizedKeys.keys = keys;
    hashedPasswordFile = lib.mkIf (secret != null) config.sops.secrets.${secret}.path;
  };
  sops.secrets = lib.mkIf (secret != null) {
    ${secret} = {
      sopsFile = fleet.secrets.shared;
      neededForUsers = true;
    };
  };
}
