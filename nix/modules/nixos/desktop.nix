# A graphical workstation: KDE Plasma on Wayland, PipeWire, fonts, a browser.
# Active when hostSpec.gui is true and the host is not touch-first.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  spec = config.hostSpec;
in
{
  config = lib.mkIf (spec.gui && !spec.touch) {
    services.displayManager.sddm.enable = lib.mkDefault true;
    services.displayManager.sddm.wayland.enable = lib.mkDefault true;
    services.desktopManager.plasma6.enable = lib.mkDefault true;

    hardware.graphics.enable = lib.mkDefault true;
    hardware.bluetooth.enable = lib.mkDefault true;

    security.rtkit.enable = lib.mkDefault true;
    services.pulseaudio.enable = lib.mkDefault false;
    services.pipewire = {
      enable = lib.mkDefault true;
      alsa.enable = lib.mkDefault true;
      pulse.enable = lib.mkDefault true;
    };

    programs.firefox.enable = lib.mkDefault true;
    fonts.packages = with pkgs; [
      noto-fonts
      noto-fonts-color-emoji
    ];
  };
}
