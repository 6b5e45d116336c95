# disko: when hostSpec.disk names a disk, partition it as GPT with a 1 GiB ESP and
# an ext4 root. nixos-anywhere runs this at install; a host with its own layout
# leaves hostSpec.disk null and adds a disko.nix (or hardware-configuration.nix).
{
  config,
  lib,
  ...
}:
let
  disk = config.hostSpec.disk;
in
{
  config = lib.mkIf (disk != null) {
    disko.devices.disk.main = {
      type = "disk";
      device = disk;
      content = {
        type = "gpt";
        partitions = {
          ESP = {
            size = "1G";
            type = "EF00";
            content = {
              type = "filesystem";
              format = "vfat";
              mountpoint = "/boot";
              mountOptions = [ "umask=0077" ];
            };
          };
          root = {
            size = "100%";
            content = {
              type = "filesystem";
              format = "ext4";
              mountpoint = "/";
            };
          };
        };
      };
    };
  };
}
