# What every Mac of the fleet has (nix-darwin). The farm's agent is Linux-only, so a
# Mac follows the fleet with a daily launchd job (hostSpec.autoUpgrade = "pull")
# that pulls the flake from its remotes in order, switches with
# `nh darwin switch --bypass-root-check` (the job runs as root, which nh refuses
# otherwise) and keeps the last `keepGenerations` system generations (lib/pull.nix).
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
  keys = fleet.settings.adminSshKeys;
  pull = (import ../lib/pull.nix).script {
    kind = "darwin";
    remotes = fleet.gitRemotes;
    inherit (fleet.settings) branch flakeDir;
    host = spec.hostName;
    keep = fleet.settings.keepGenerations;
  };
  pullScript = pkgs.writeShellScript "fleet-pull" ''
    export PATH=${lib.makeBinPath [ pkgs.git pkgs.nh config.nix.package ]}:/usr/bin:/bin
    ${pull}
  '';
in
{
  imports = [
    ../fleet/cache-client.nix
    ../fleet/secrets.nix
  ];

  assertions = [ (fleet.loginAssertion spec keys null) ];

  networking.hostName = spec.hostName;
  networking.computerName = role spec.hostName;
  nixpkgs.hostPlatform = role spec.system;
  system.stateVersion = role 6;
  system.primaryUser = spec.primaryUser;

  users.users.${spec.primaryUser} = {
    home = "/Users/${spec.primaryUser}";
    openssh.authorizedKeys.keys = keys;
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
    users.${spec.primaryUser} = import ./home.nix;
  };

  environment.systemPackages = with pkgs; [
    git
    nh
  ];

  launchd.daemons.fleet-pull = lib.mkIf (spec.autoUpgrade == "pull") {
    serviceConfig = {
      ProgramArguments = [ "${pullScript}" ];
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
