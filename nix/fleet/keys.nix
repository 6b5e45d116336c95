# Written by scripts/init-fleet: the admins' keys and the farm's public keys.
# The example fleet's private keys are not kept anywhere: run
# `scripts/init-fleet --admin-ssh-key ~/.ssh/id_ed25519.pub` to make the fleet yours.
{
  # name -> age public key: who can read and edit every secret (.sops.yaml).
  adminAgeKeys = {
    rain = "age135rxzjc95spy6c8rur2970mmua2wn97fh2qfzhuydv4vn4l4uqgqgfpgwa";
  };

  # SSH public keys of the admins: they log in as each host's primary user and root.
  adminSshKeys = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBb5nuUkLo5tOjL48pYCy4aJVGOqL3wMF2j1NNayuQ5y example-admin"
  ];

  # user -> the key in nix/secrets/shared.yaml holding that user's hashed password
  # (mkpasswd -m yescrypt); the user gets it on every host it is primary user of.
  passwordHashSecrets = {
    rain = "rain-password-hash";
  };

  # The cache's public key (`nix key convert-secret-to-public`), trusted by every host.
  cachePublicKey = "farm-1:mnUUt/NvASWLmBT3ZZg0Aq7tle/5oHZDkGSkukeJHKA=";

  # The deploy key's public half: an agent applies only manifests it verifies.
  deployPublicKey = "farm-deploy-1:9vz7ljn7FUGvAQxQ4XtaxYszPX7HHdV2w/+42kZoRbo=";
}
