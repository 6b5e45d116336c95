# services.fleet-pull: for hosts the farm does not serve (a laptop away from home,
# a tablet). A daily timer tries the fleet's remotes in order (GitHub, Codeberg,
# the self-hosted Forgejo), switches to the first that answers with
# `nh os switch --bypass-root-check` (the unit runs as root), and keeps the last N
# system generations. The script is nix/lib/pull.nix (the Macs run the same one).
# Usable from any flake: it needs nothing of this fleet.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;
  cfg = config.services.fleet-pull;

  script = pkgs.writeShellScript "fleet-pull" (
    (import ../lib/pull.nix).script {
      kind = "nixos";
      inherit (cfg)
        remotes
        branch
        flakeDir
        host
        nhArgs
        ;
      keep = cfg.keepGenerations;
    }
  );
in
{
  options.services.fleet-pull = {
    enable = lib.mkEnableOption "a daily pull of the fleet flake from its remotes and `nh os switch`";

    remotes = mkOption {
      type = types.nonEmptyListOf types.str;
      example = [ "https://github.com/alice/homelab.git" ];
      description = "Git remotes of the fleet, tried in order.";
    };

    branch = mkOption {
      type = types.str;
      default = "main";
      description = "The branch to follow.";
    };

    flakeDir = mkOption {
      type = types.str;
      default = ".";
      description = "The flake's folder inside the repository.";
    };

    host = mkOption {
      type = types.str;
      default = config.networking.hostName;
      defaultText = lib.literalExpression "config.networking.hostName";
      description = "The nixosConfigurations attribute to switch to.";
    };

    keepGenerations = mkOption {
      type = types.ints.positive;
      default = 5;
      description = "System generations kept after a switch.";
    };

    nhArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Extra arguments to `nh os switch` (`--bypass-root-check` is always given: the unit runs as root).";
    };

    onCalendar = mkOption {
      type = types.str;
      default = "daily";
      description = "When to pull (systemd calendar event).";
    };
  };

  config = lib.mkIf cfg.enable {
    systemd.services.fleet-pull = {
      description = "pull the fleet flake and switch with nh";
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      restartIfChanged = false;
      path = [
        config.nix.package
        config.programs.nh.package
        pkgs.git
        pkgs.coreutils
      ];
      environment.HOME = "/root";
      # It activates the new system: the same minimal sandbox as the agent's.
      serviceConfig = (import ../lib/hardening.nix).rootService // {
        Type = "oneshot";
        ExecStart = script;
      };
    };

    systemd.timers.fleet-pull = {
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = cfg.onCalendar;
        Persistent = true;
        RandomizedDelaySec = "1h";
      };
    };
  };
}
