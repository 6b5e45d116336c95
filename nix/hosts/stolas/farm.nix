# The farm itself runs here. Its secrets come from nix/secrets/farm.yaml through
# nix/modules/farm-config.nix; this file only turns the services on.
{ ... }:
{
  services.farm-builder = {
    enable = true;
    listen = "0.0.0.0:8080";
    openFirewall = true;
  };
  services.farm-notifier.enable = true;

  # The farm builds for aarch64-linux (the Pis) through qemu; more cores help.
  nix.settings.max-jobs = 4;
}
