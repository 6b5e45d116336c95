# services.farm-agent: the host side of the farm. It fetches the host's deploy
# manifest from the builder, verifies the farm's signature and sequence number,
# realises the store path from the farm's cache, switches, runs the health checks,
# re-activates the previous system on failure and keeps N generations.
#
# It runs as root (it switches the system), so its sandbox keeps only what cannot
# break switch-to-configuration. It is not restarted by a switch (it is usually the
# one switching).
#
# It is a long-running service, not a `--once` oneshot on a timer: it checks on
# start, every `interval`, after a resume from sleep and when the notifier pokes
# it (`listen`), and after an update a Wake-on-LAN started it suspends the host
# again (`suspendAfterWake`); a oneshot would miss the pokes and the resumes. Its
# daily timer only starts the same service again should it ever have stopped
# (starting a running service does nothing); `--once` is for running it by hand.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;
  cfg = config.services.farm-agent;
  flags = import ../lib/flags.nix;
  hardening = import ../lib/hardening.nix;

  deployPublicKeyFile =
    if cfg.deployPublicKeyFile != null then
      cfg.deployPublicKeyFile
    else
      pkgs.writeText "farm-deploy.pub" cfg.deployPublicKey;

  # Every flag's option (but those this module sets itself) comes from the agent's
  # own schema (`agent -flags-json`, nix/services/flags/agent.json): the values
  # of cfg under those names are the command line.
  rendered = flags.agent (
    cfg
    // {
      inherit deployPublicKeyFile stateDir;
    }
  );

  stateDir = "/var/lib/farm-agent";
  duration = types.strMatching flags.durationPattern;
  port = lib.toInt (lib.last (lib.splitString ":" cfg.listen));
in
{
  imports = [
    (lib.mkChangedOptionModule
      [ "services" "farm-agent" "builderUrl" ]
      [ "services" "farm-agent" "builderUrls" ]
      (config: [ config.services.farm-agent.builderUrl ])
    )
  ];

  options.services.farm-agent = flags.mkOptions lib {
    schema = flags.schemas.agent;
    # Set here: the key file from deployPublicKey(File), the state directory the
    # unit owns, and --once, which is for running the agent by hand.
    exclude = [
      "deploy-public-key-file"
      "state-dir"
      "once"
    ];
    overrides = {
      builderUrls = o: builtins.removeAttrs o [ "default" ] // {
        type = types.nonEmptyListOf types.str;
        example = [ "https://farm.home.arpa" "https://farm2.home.arpa" ];
      };
      host = o: o // {
        type = types.str;
        default = config.networking.hostName;
        defaultText = lib.literalExpression "config.networking.hostName";
      };
      cacheUrl = o: builtins.removeAttrs o [ "default" ] // {
        type = types.str;
        example = "https://farm.home.arpa/nix-cache";
      };
      cachePublicKey = o: builtins.removeAttrs o [ "default" ] // {
        type = types.str;
        example = "farm-1:mnUUt/NvASWLmBT3ZZg0Aq7tle/5oHZDkGSkukeJHKA=";
      };
      interval.type = duration;
      interval.default = "15m";
      keepGenerations.type = types.ints.positive;
      keepGenerations.default = 5;
      switchMode.type = types.enum [
        "switch"
        "boot"
      ];
      switchMode.default = "switch";
      healthChecks.example = [
        "systemctl is-active sshd.service"
        "curl -fsS http://127.0.0.1:8080/healthz"
      ];
      systemdHealth.type = types.bool;
      systemdHealth.default = true;
      listen.example = "0.0.0.0:7741";
      suspendAfterWake.type = types.bool;
      suspendAfterWake.default = false;
      suspendCommand.example = "systemctl hibernate";
      logLevel.type = types.nullOr (types.enum flags.logLevels);
      # The maintenance window (internal/agent/window), from hostSpec.deploy.
      window.type = types.nullOr (types.strMatching (import ../lib/deploy.nix).windowPattern);
      window.example = "03:00-05:00";
      outsideWindow.type = types.nullOr (
        types.enum [
          "boot"
          "wait"
        ]
      );
      idleMinutes.type = types.nullOr types.ints.positive;
      timeZone.example = "Europe/Berlin";
    };
  }
  // {
    enable = lib.mkEnableOption "the farm's agent (signed deploys from the farm)";

    package = mkOption {
      type = types.package;
      default = pkgs.homelab-farm.agent;
      defaultText = lib.literalExpression "pkgs.homelab-farm.agent";
      description = "The package that provides `bin/agent`.";
    };

    deployPublicKey = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "farm-deploy-1:9vz7ljn7FUGvAQxQ4XtaxYszPX7HHdV2w/+42kZoRbo=";
      description = "The farm's deploy public key; written to the store for `--deploy-public-key-file`.";
    };

    deployPublicKeyFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = "A file holding the deploy public key, instead of `deployPublicKey`.";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the port of `listen` in the firewall, for the notifier's pokes.";
    };

    onCalendar = mkOption {
      type = types.str;
      default = "daily";
      description = "When the timer starts the agent's service again, should it have stopped.";
    };

    secretFiles = mkOption {
      type = types.attrsOf (types.strMatching "/.*");
      default = { };
      description = "Further secrets, each passed as `--<name>-file` through a systemd credential.";
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Extra command-line arguments.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.deployPublicKey != null || cfg.deployPublicKeyFile != null;
        message = "services.farm-agent needs deployPublicKey or deployPublicKeyFile: it applies only manifests signed by the farm.";
      }
      {
        assertion = cfg.listen == null || cfg.pokeTokenFile != null;
        message = "services.farm-agent.listen needs pokeTokenFile: pokes are accepted only with the notifier's token.";
      }
      {
        assertion = !cfg.openFirewall || cfg.listen != null;
        message = "services.farm-agent.openFirewall needs listen.";
      }
    ];

    networking.firewall.allowedTCPPorts = lib.mkIf (cfg.openFirewall && cfg.listen != null) [ port ];

    systemd.services.farm-agent = {
      description = "homelab farm agent";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      # The agent is what switches: a switch must neither stop nor restart it.
      restartIfChanged = false;
      stopIfChanged = false;
      path = [
        config.nix.package
        config.systemd.package
        pkgs.coreutils
      ];
      environment.NIX_CONFIG = "narinfo-cache-negative-ttl = 0";
      serviceConfig = hardening.rootService // {
        ExecStart = flags.execStart (lib.getExe' cfg.package "agent") rendered;
        LoadCredential = rendered.credentials;
        StateDirectory = "farm-agent";
        Restart = "on-failure";
        RestartSec = "30s";
      };
    };

    # Starts farm-agent.service (the same service, not a `--once` run) should it
    # have stopped; does nothing while it runs.
    systemd.timers.farm-agent = {
      description = "start the homelab farm agent again, should it have stopped";
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = cfg.onCalendar;
        Persistent = true;
        RandomizedDelaySec = "30min";
      };
    };
  };
}
