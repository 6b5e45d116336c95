# stolas: the home server; runs the farm (builder + notifier, see farm.nix).
{
  role = "server";
  primaryUser = "rain";

  # Quirks.
  disk = "/dev/nvme0n1"; # disko partitions it at install

  # The canary: a new commit reaches stolas first; the other hosts get it only
  # once stolas switched and is healthy (the server role's wave is 1).
  deploy.wave = 0;
}
