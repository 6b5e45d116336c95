# What every NixOS host of the fleet has, whatever its role, and every feature:
# each feature module follows its hostSpec flag, so a flag works in every role
# where it makes sense (lib/spec.nix's `conflicts` refuses the rest). Values are
# set at the role priority (lib/util.nix) unless they follow from the hostSpec.
{
  config,
  lib,
  pkgs,
  fleet,
  ...
}:
let
  spec = config.hostSpec;
  role = lib.mkOverride (import ../lib/util.nix).rolePriority;
in
{
  imports = [
    ../fleet/nixos.nix
    ./desktop.nix
    ./gaming.nix
    ./touch.nix
    ./headless.nix
    ./wake-on-lan.nix
    ./disk.nix
    ./login.nix
  ];

  networking.hostName = spec.hostName;
  nixpkgs.hostPlatform = role spec.system;
  system.stateVersion = role "25.05";
  time.timeZone = role "UTC";
  i18n.defaultLocale = role "en_US.UTF-8";

  nix.settings = {
    experimental-features = [
      "nix-command"
      "flakes"
    ];
    trusted-users = [ "root" ];
    auto-optimise-store = role true;
  };

  # nh: `nh os switch` for people, and the periodic clean-up of old generations.
  programs.nh = {
    enable = role true;
    clean.enable = role true;
    clean.extraArgs = role "--keep 5 --keep-since 14d";
  };

  # The SSH host key is also the host's sops identity (nix/fleet/secrets.nix).
  services.openssh = {
    enable = role true;
    hostKeys = [
      {
        path = "/etc/ssh/ssh_host_ed25519_key";
        type = "ed25519";
      }
    ];
    settings = {
      PasswordAuthentication = role false;
      KbdInteractiveAuthentication = role false;
      PermitRootLogin = role "prohibit-password";
    };
  };

  home-manager = {
    useGlobalPkgs = true;
    useUserPackages = true;
    extraSpecialArgs = {
      hostSpec = spec;
    };
    users.${spec.primaryUser} = import ./home.nix;
  };

  environment.systemPackages = with pkgs; [
    git
    htop
    vim
  ];

  # How the host follows the fleet (hostSpec.autoUpgrade).
  services.farm-agent.enable = role (spec.autoUpgrade == "farm");
  services.fleet-pull.enable = role (spec.autoUpgrade == "pull");
}
