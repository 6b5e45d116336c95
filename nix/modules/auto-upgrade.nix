# services.fleet-pull: for hosts the farm does not serve (a laptop away from home,
# a Mac, a tablet). A daily timer tries the fleet's remotes in order (GitHub,
# Codeberg, the self-hosted Forgejo), switches to the first that answers with
# `nh os switch`, and keeps the last N system generations.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;
  cfg = config.services.fleet-pull;
  farm = import ../farm;

  script = pkgs.writeShellScript "fleet-pull" ''
    set -uo pipefail
    for url in ${lib.escapeShellArgs cfg.remotes}; do
      if ! git ls-remote --exit-code --heads "$url" ${lib.escapeShellArg cfg.branch} >/dev/null 2>&1; then
        echo "fleet-pull: $url does not answer, trying the next remote" >&2
        continue
      fi
      ref="git+$url?ref=${cfg.branch}&dir=${cfg.flakeDir}"
      echo "fleet-pull: switching ${cfg.host} to $ref" >&2
      nh os switch ${lib.escapeShellArgs cfg.nhArgs} --hostname ${lib.escapeShellArg cfg.host} "$ref" || exit 1
      nix-env --profile /nix/var/nix/profiles/system --delete-generations +${toString cfg.keepGenerations}
      exit 0
    done
    echo "fleet-pull: no remote answered" >&2
    exit 1
  '';
in
{
  options.services.fleet-pull = {
    enable = lib.mkEnableOption "a daily pull of the fleet flake from its remotes and `nh os switch`";

    remotes = mkOption {
      type = types.nonEmptyListOf types.str;
      default = farm.gitRemotes;
      description = "Git remotes of the fleet, tried in order.";
    };

    branch = mkOption {
      type = types.str;
      default = farm.settings.branch;
      description = "The branch to follow.";
    };

    flakeDir = mkOption {
      type = types.str;
      default = farm.settings.flakeDir;
      description = "The flake's folder inside the repository.";
    };

    host = mkOption {
      type = types.str;
      default = config.hostSpec.hostName;
      defaultText = lib.literalExpression "config.hostSpec.hostName";
      description = "The nixosConfigurations attribute to switch to.";
    };

    keepGenerations = mkOption {
      type = types.ints.positive;
      default = 5;
      description = "System generations kept after a switch.";
    };

    nhArgs = mkOption {
      type = types.listOf types.str;
      default = [ "--bypass-root-check" ];
      description = "Extra arguments to `nh os switch` (the unit runs as root).";
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
