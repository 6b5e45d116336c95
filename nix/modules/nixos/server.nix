# Headless hardening: keys-only SSH, firewall, no documentation or fonts, kernel
# and network sysctls, journald size cap. Active when hostSpec.headless is true.
{
  config,
  lib,
  ...
}:
{
  config = lib.mkIf config.hostSpec.headless {
    networking.firewall.enable = lib.mkDefault true;
    networking.firewall.allowPing = lib.mkDefault true;

    services.openssh.settings = {
      PermitRootLogin = lib.mkDefault "prohibit-password";
      X11Forwarding = lib.mkDefault false;
      AllowAgentForwarding = lib.mkDefault false;
      MaxAuthTries = lib.mkDefault 3;
    };
    services.fail2ban.enable = lib.mkDefault true;

    security.sudo.execWheelOnly = lib.mkDefault true;
    security.lockKernelModules = lib.mkDefault false;
    security.protectKernelImage = lib.mkDefault true;

    boot.kernel.sysctl = {
      "kernel.kptr_restrict" = lib.mkDefault 2;
      "kernel.dmesg_restrict" = lib.mkDefault 1;
      "kernel.unprivileged_bpf_disabled" = lib.mkDefault 1;
      "net.core.bpf_jit_harden" = lib.mkDefault 2;
      "net.ipv4.conf.all.rp_filter" = lib.mkDefault 1;
      "net.ipv4.conf.all.accept_redirects" = lib.mkDefault 0;
      "net.ipv4.conf.all.send_redirects" = lib.mkDefault 0;
      "net.ipv6.conf.all.accept_redirects" = lib.mkDefault 0;
      "net.ipv4.tcp_syncookies" = lib.mkDefault 1;
    };

    documentation.enable = lib.mkDefault false;
    fonts.fontconfig.enable = lib.mkDefault false;
    xdg.mime.enable = lib.mkDefault false;
    services.journald.settings.Journal.SystemMaxUse = lib.mkDefault "1G";
  };
}
