# The override pattern: a plain value here beats the role's lib.mkDefault, no
# lib.mkForce needed. Each line names the default it replaces.
{
  config,
  lib,
  pkgs,
  ...
}:
{
  # common.nix: time.timeZone = mkDefault "UTC"
  time.timeZone = "Europe/Berlin";

  # desktop role: the default kernel; malphas games, so it takes the zen kernel.
  boot.kernelPackages = pkgs.linuxPackages_zen;

  # gaming.nix: remotePlay.openFirewall = mkDefault true; malphas streams nothing.
  programs.steam.remotePlay.openFirewall = false;

  # The free-form quirk from default.nix.
  hardware.amdgpu.initrd.enable = config.hostSpec.gpu == "amd";

  # The agent checks the desktop came back before keeping a new generation.
  services.farm-agent.healthChecks = [ "systemctl is-active display-manager.service" ];

  hardware.enableRedistributableFirmware = true;
  environment.systemPackages = lib.optionals config.hostSpec.gaming [ pkgs.mangohud ];
}
