# What every Mac of the fleet has (nix-darwin). The farm's agent is Linux-only, so a
# Mac follows the fleet with a daily launchd job that pulls the flake from its
# remotes in order and switches with `nh darwin switch` (hostSpec.autoUpgrade = "pull").
{
  config,
  lib,
  pkgs,
  ...
}:
let
  spec = config.hostSpec;
  farm = import ../../farm;
  pull = pkgs.writeShellScript "fleet-pull" ''
    set -uo pipefail
    export PATH=${lib.makeBinPath [ pkgs.git pkgs.nh config.nix.package ]}:/usr/bin:/bin
    for url in ${lib.escapeShellArgs farm.gitRemotes}; do
      git ls-remote --exit-code --heads "$url" ${farm.settings.branch} >/dev/null 2>&1 || continue
      exec nh darwin switch --hostname ${spec.hostName} "git+$url?ref=${farm.settings.branch}&dir=${farm.settings.flakeDir}"
    done
    echo "fleet-pull: no remote answered" >&2
    exit 1
  '';
in
{
  imports = [
    ../cache-client.nix
    ../secrets.nix
  ];

  networking.hostName = spec.hostName;
  networking.computerName = lib.mkDefault spec.hostName;
  nixpkgs.hostPlatform = lib.mkDefault spec.system;
  system.stateVersion = lib.mkDefault 6;
  system.primaryUser = spec.primaryUser;

  users.users.${spec.primaryUser} = {
    home = "/Users/${spec.primaryUser}";
    openssh.authorizedKeys.keys = farm.settings.adminSshKeys;
  };

  nix.settings = {
    experimental-features = [
      "nix-command"
      "flakes"
    ];
    trusted-users = [ "root" ];
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
    nh
  ];

  launchd.daemons.fleet-pull = lib.mkIf (spec.autoUpgrade == "pull") {
    serviceConfig = {
      ProgramArguments = [ "${pull}" ];
      StartCalendarInterval = [
        {
          Hour = 4;
          Minute = 30;
        }
      ];
      StandardErrorPath = "/var/log/fleet-pull.log";
    };
  };
}
