# This fleet's glue on every NixOS host: the farm's generic services (nix/services,
# the same modules the flake exports) with this fleet's values and sops secrets as
# their defaults, the farm's cache trusted, sops-nix keyed by the SSH host key.
{
  imports = [
    ./cache-client.nix
    ./secrets.nix
    ./farm-config.nix
    ../services/builder.nix
    ../services/notifier.nix
    ../services/agent.nix
    ../services/fleet-pull.nix
  ];
}
