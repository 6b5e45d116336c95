# Wake-on-LAN: arm the magic packet on the host's wired NIC when its role wants it
# (hostSpec.wakeOnLan.enable) and the host names the interface.
{
  config,
  lib,
  ...
}:
let
  wol = config.hostSpec.wakeOnLan;
in
{
  config = lib.mkIf (wol.enable && wol.interface != null) {
    networking.interfaces.${wol.interface}.wakeOnLan.enable = true;
  };
}
