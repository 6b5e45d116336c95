# Touch: a touch-first GNOME session, screen rotation and ambient light (iio),
# palm rejection, power saving. Active when hostSpec.touch is true, in any role
# with a graphical session (a desktop with a touch screen gets GNOME too).
{
  config,
  lib,
  ...
}:
let
  role = lib.mkOverride (import ../lib/util.nix).rolePriority;
in
{
  config = lib.mkIf config.hostSpec.touch {
    services.displayManager.gdm.enable = role true;
    services.desktopManager.gnome.enable = role true;
    services.libinput.enable = role true;
    services.libinput.touchpad.disableWhileTyping = role true;
    hardware.sensor.iio.enable = role true;
    hardware.graphics.enable = role true;

    services.power-profiles-daemon.enable = role true;
    services.thermald.enable = role (lib.hasPrefix "x86_64" config.hostSpec.system);
    powerManagement.enable = role true;

    services.pipewire.enable = role true;
    services.pipewire.pulse.enable = role true;
  };
}
