# stolas: the home server; runs the farm (builder + notifier, see farm.nix).
{
  role = "server";
  primaryUser = "rain";

  # Quirks.
  disk = "/dev/nvme0n1"; # disko partitions it at install
}
