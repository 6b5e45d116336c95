# What every NixOS host of the fleet has, whatever its role. Values are defaults
# (lib.mkDefault) unless they follow from the hostSpec itself.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  spec = config.hostSpec;
  farm = import ../../farm;
in
{
  imports = [
    ../cache-client.nix
    ../secrets.nix
    ../farm-config.nix
    ../builder.nix
    ../notifier.nix
    ../agent.nix
    ../auto-upgrade.nix
    ./wake-on-lan.nix
    ./disk.nix
  ];

  networking.hostName = spec.hostName;
  nixpkgs.hostPlatform = lib.mkDefault spec.system;
  system.stateVersion = lib.mkDefault "25.05";
  time.timeZone = lib.mkDefault "UTC";
  i18n.defaultLocale = lib.mkDefault "en_US.UTF-8";

  # The Wake-on-LAN MAC the farm knows (nix/farm/hosts.json), unless the host says.
  hostSpec.wakeOnLan = lib.mkIf (farm.hosts ? ${spec.hostName}) (
    let
      w = farm.hosts.${spec.hostName}.wakeOnLan or null;
    in
    lib.mkIf (w != null) { mac = lib.mkDefault w.mac; }
  );

  users.users.${spec.primaryUser} = {
    isNormalUser = true;
    extraGroups = [ "wheel" ] ++ lib.optional config.networking.networkmanager.enable "networkmanager";
    openssh.authorizedKeys.keys = farm.settings.adminSshKeys;
  };
  users.users.root.openssh.authorizedKeys.keys = farm.settings.adminSshKeys;

  nix.settings = {
    experimental-features = [
      "nix-command"
      "flakes"
    ];
    trusted-users = [ "root" ];
    auto-optimise-store = lib.mkDefault true;
  };

  # nh: `nh os switch` for people, and the periodic clean-up of old generations.
  programs.nh = {
    enable = lib.mkDefault true;
    clean.enable = lib.mkDefault true;
    clean.extraArgs = lib.mkDefault "--keep 5 --keep-since 14d";
  };

  # The SSH host key is also the host's sops identity (nix/modules/secrets.nix).
  services.openssh = {
    enable = lib.mkDefault true;
    hostKeys = [
      {
        path = "/etc/ssh/ssh_host_ed25519_key";
        type = "ed25519";
      }
    ];
    settings = {
      PasswordAuthentication = lib.mkDefault false;
      KbdInteractiveAuthentication = lib.mkDefault false;
      PermitRootLogin = lib.mkDefault "prohibit-password";
    };
  };

  home-manager = {
    useGlobalPkgs = true;
    useUserPackages = true;
    extraSpecialArgs = {
      hostSpec = spec;
    };
    users.${spec.primaryUser} = import ../home;
  };

  environment.systemPackages = with pkgs; [
    git
    htop
    vim
  ];

  # How the host follows the fleet (hostSpec.autoUpgrade).
  services.farm-agent.enable = lib.mkDefault (spec.autoUpgrade == "farm");
  services.fleet-pull.enable = lib.mkDefault (spec.autoUpgrade == "pull");
}
