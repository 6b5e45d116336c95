# Values nixpkgs' own modules set that meet the fleet's (the tests check that the
# fleet's roles and features merge with them): the same definitions, at the same
# priority, as upstream.
{ lib, ... }:
{
  # nixos/modules/config/sysctl.nix
  boot.kernel.sysctl."kernel.kptr_restrict" = lib.mkDefault 1;
  boot.kernel.sysctl."vm.max_map_count" = lib.mkDefault 1048576;
  # nixos/modules/services/networking/ssh/sshd.nix (its option default)
  services.openssh.settings.PermitRootLogin = lib.mkOverride 1500 "prohibit-password";
}
