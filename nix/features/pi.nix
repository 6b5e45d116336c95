# Raspberry Pi (the pi role's module): installed from an SD image. nixpkgs'
# sd-image-aarch64 module builds it (`system.build.sdImage`; the flake exposes
# it as images.<host>), boots by extlinux (U-Boot) on the generic aarch64 kernel
# and gives the card's root partition the label NIXOS_SD that fileSystems."/"
# mounts. zram instead of swap on flash; the journal in memory.
{
  lib,
  modulesPath,
  ...
}:
let
  role = lib.mkOverride (import ../lib/util.nix).rolePriority;
in
{
  imports = [ (modulesPath + "/installer/sd-card/sd-image-aarch64.nix") ];

  # The image is written with zstd; `zstd -d` it onto the card.
  sdImage.compressImage = role true;

  hardware.enableRedistributableFirmware = role true;
  zramSwap.enable = role true;
  networking.useNetworkd = role true;
  services.journald.settings.Journal.Storage = role "volatile";
}
