# Raspberry Pi: extlinux (U-Boot) boot, the generic aarch64 kernel, firmware, the
# SD card's root label, zram instead of swap on flash.
{
  lib,
  pkgs,
  ...
}:
{
  boot.loader.grub.enable = lib.mkDefault false;
  boot.loader.generic-extlinux-compatible.enable = lib.mkDefault true;
  boot.kernelPackages = lib.mkDefault pkgs.linuxPackages;
  boot.initrd.availableKernelModules = [
    "usbhid"
    "usb_storage"
    "vc4"
  ];
  hardware.enableRedistributableFirmware = lib.mkDefault true;

  fileSystems."/" = lib.mkDefault {
    device = "/dev/disk/by-label/NIXOS_SD";
    fsType = "ext4";
  };

  zramSwap.enable = lib.mkDefault true;
  networking.useNetworkd = lib.mkDefault true;
  services.journald.settings.Journal.Storage = lib.mkDefault "volatile";
}
