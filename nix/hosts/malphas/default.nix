# malphas: the main desktop. Everything not said here comes from the desktop role
# (nix/roles/desktop.nix); the other files of this folder are
# imported automatically and override the role where malphas differs.
{
  role = "desktop";
  primaryUser = "rain";

  # Quirks.
  gpu = "amd"; # free-form: read by overrides.nix
  wakeOnLan.interface = "enp5s0";
  wakeOnLan.mac = "a8:a1:59:3c:10:7e"; # the notifier wakes malphas for updates
}
