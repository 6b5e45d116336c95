# The fleet's overlay: the farm's three programs as pkgs.homelab-farm.{builder,
# notifier,agent}, which the NixOS modules use as their default packages.
final: _prev: {
  homelab-farm = {
    builder = final.callPackage ../pkgs/farm.nix { program = "builder"; };
    notifier = final.callPackage ../pkgs/farm.nix { program = "notifier"; };
    agent = final.callPackage ../pkgs/farm.nix { program = "agent"; };
  };
}
