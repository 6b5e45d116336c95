# Stand-in for nixpkgs' nixos/modules/installer/sd-card/sd-image-aarch64.nix (and
# the sd-image.nix it imports): the options it declares that the fleet sets, with
# upstream's types, and the values upstream sets that the tests read (extlinux
# boot, the root file system on the card's NIXOS_SD partition, the image as
# system.build.sdImage).
{ config, lib, ... }:
{
  options.sdImage = {
    compressImage = lib.mkOption {
      type = lib.types.bool;
      default = true;
    };
    populateRootCommands = lib.mkOption {
      type = lib.types.lines;
      default = "";
    };
  };
  config = {
    boot.loader.grub.enable = false;
    boot.loader.generic-extlinux-compatible.enable = true;
    fileSystems."/" = {
      device = "/dev/disk/by-label/NIXOS_SD";
      fsType = "ext4";
    };
    system.build.sdImage = {
      name = "nixos-image-sd-card-${config.networking.hostName}-aarch64-linux.img";
      compressed = config.sdImage.compressImage;
    };
  };
}
