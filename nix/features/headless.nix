# Headless hardening: keys-only SSH, firewall, no documentation or fonts, kernel
# and network sysctls, journald size cap. Active when hostSpec.headless is true,
# in any role. Everything at the role priority (lib/util.nix): nixpkgs sets some
# of these sysctls itself with lib.mkDefault (kernel.kptr_restrict = 1 in
# nixos/modules/config/sysctl.nix), and two values at one priority do not merge.
{
  config,
  lib,
  ...
}:
let
  role = lib.mkOverride (import ../lib/util.nix).rolePriority;
in
{
  config = lib.mkIf config.hostSpec.headless {
    networking.firewall.enable = role true;
    networking.firewall.allowPing = role true;

    services.openssh.settings = {
      X11Forwarding = role false;
      AllowAgentForwarding = role false;
      MaxAuthTries = role 3;
    };
    services.fail2ban.enable = role true;

    security.sudo.execWheelOnly = role true;
    security.protectKernelImage = role true;

    boot.kernel.sysctl = {
      "kernel.kptr_restrict" = role 2;
      "kernel.dmesg_restrict" = role 1;
      "kernel.unprivileged_bpf_disabled" = role 1;
      "net.core.bpf_jit_harden" = role 2;
      "net.ipv4.conf.all.rp_filter" = role 1;
      "net.ipv4.conf.all.accept_redirects" = role 0;
      "net.ipv4.conf.all.send_redirects" = role 0;
      "net.ipv6.conf.all.accept_redirects" = role 0;
      "net.ipv4.tcp_syncookies" = role 1;
    };

    documentation.enable = role false;
    fonts.fontconfig.enable = role false;
    xdg.mime.enable = role false;
    services.journald.settings.Journal.SystemMaxUse = role "1G";
  };
}
