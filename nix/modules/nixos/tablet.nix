# Tablet: a touch-first GNOME session, screen rotation and ambient light (iio),
# on-screen keyboard, palm rejection, and power saving.
{
  config,
  lib,
  ...
}:
{
  config = lib.mkIf config.hostSpec.touch {
    services.displayManager.gdm.enable = lib.mkDefault true;
    services.desktopManager.gnome.enable = lib.mkDefault true;
    services.libinput.enable = lib.mkDefault true;
    services.libinput.touchpad.disableWhileTyping = lib.mkDefault true;
    hardware.sensor.iio.enable = lib.mkDefault true;
    hardware.graphics.enable = lib.mkDefault true;

    services.power-profiles-daemon.enable = lib.mkDefault true;
    services.thermald.enable = lib.mkDefault (lib.hasPrefix "x86_64" config.hostSpec.system);
    powerManagement.enable = lib.mkDefault true;

    services.pipewire.enable = lib.mkDefault true;
    services.pipewire.pulse.enable = lib.mkDefault true;
  };
}
