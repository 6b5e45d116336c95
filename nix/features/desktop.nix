# A graphical session: KDE Plasma on Wayland, PipeWire, fonts, a browser. Active
# when hostSpec.gui is true and the host is not touch-first (touch.nix: GNOME).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  spec = config.hostSpec;
  role = lib.mkOverride (import ../lib/util.nix).rolePriority;
in
{
  config = lib.mkIf (spec.gui && !spec.touch) {
    services.displayManager.sddm.enable = role true;
    services.displayManager.sddm.wayland.enable = role true;
    services.desktopManager.plasma6.enable = role true;

    hardware.graphics.enable = role true;
    hardware.bluetooth.enable = role true;

    security.rtkit.enable = role true;
    services.pulseaudio.enable = role false;
    services.pipewire = {
      enable = role true;
      alsa.enable = role true;
      pulse.enable = role true;
    };

    programs.firefox.enable = role true;
    fonts.packages = with pkgs; [
      noto-fonts
      noto-fonts-color-emoji
    ];
  };
}
