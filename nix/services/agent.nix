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

  rendered = flags.agent {
    inherit (cfg)
      builderUrl
      host
      tokenFile
      cacheUrl
      cachePublicKey
      interval
      keepGenerations
      switchMode
      healthChecks
      healthTimeout
      systemdHealth
      switchTimeout
      currentSystem
      profile
      listen
      pokeTokenFile
      suspendAfterWake
      suspendCommand
      logLevel
      window
      outsideWindow
      idleMinutes
      timeZone
      secretFiles
      extraArgs
      ;
    deployPublicKeyFile = deployPublicKeyFile;
    stateDir = stateDir;
  };

  stateDir = "/var/lib/farm-agent";
  duration = types.strMatching flags.durationPattern;
  port = lib.toInt (lib.last (lib.splitString ":" cfg.listen));
in
{
  options.services.farm-agent = {
    enable = lib.mkEnableOption "the farm's agent (signed deploys from the farm)";

    package = mkOption {
      type = types.package;
      default = pkgs.homelab-farm.agent;
      defaultText = lib.literalExpression "pkgs.homelab-farm.agent";
      description = "The package that provides `bin/agent`.";
    };

    builderUrl = mkOption {
      type = types.str;
      example = "https://farm.home.arpa";
      description = "The builder's API. `--builder-url`.";
    };

    host = mkOption {
      type = types.str;
      default = config.networking.hostName;
      defaultText = lib.literalExpression "config.networking.hostName";
      description = "The name the farm knows this host by. `--host`.";
    };

    tokenFile = mkOption {
      type = types.nullOr (types.strMatching "/.*");
      default = null;
      description = "The host's API token, read at runtime. `--token-file`.";
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

    cacheUrl = mkOption {
      type = types.str;
      example = "https://farm.home.arpa/nix-cache";
      description = "The farm's binary cache. `--cache-url`.";
    };

    cachePublicKey = mkOption {
      type = types.str;
      example = "farm-1:mnUUt/NvASWLmBT3ZZg0Aq7tle/5oHZDkGSkukeJHKA=";
      description = "The cache's public key. `--cache-public-key`.";
    };

    interval = mkOption {
      type = duration;
      default = "15m";
      description = "How often the agent asks for a new manifest (a Go duration). `--interval`.";
    };

    keepGenerations = mkOption {
      type = types.ints.positive;
      default = 5;
      description = "System generations kept after a switch. `--keep-generations`.";
    };

    switchMode = mkOption {
      type = types.enum [
        "switch"
        "boot"
      ];
      default = "switch";
      description = "Activate now, or at the next boot. `--switch-mode`.";
    };

    healthChecks = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "systemctl is-active sshd.service"
        "curl -fsS http://127.0.0.1:8080/healthz"
      ];
      description = "Commands that must succeed after a switch, else it is undone. `--health-check` (repeated).";
    };

    healthTimeout = mkOption {
      type = types.nullOr duration;
      default = null;
      example = "2m";
      description = "Time each health check may take (null: 2m). `--health-timeout`.";
    };

    systemdHealth = mkOption {
      type = types.bool;
      default = true;
      description = "Fail a switch after which systemd units have failed that had not before. `--systemd-health`.";
    };

    switchTimeout = mkOption {
      type = types.nullOr duration;
      default = null;
      example = "10m";
      description = "Time switch-to-configuration may take (null: 10m). `--switch-timeout`.";
    };

    currentSystem = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "Link to the running system (null: /run/current-system). `--current-system`.";
    };

    profile = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "The system profile the agent sets (null: /nix/var/nix/profiles/system). `--profile`.";
    };

    listen = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "0.0.0.0:7741";
      description = "Address to take the notifier's pokes on (POST /poke); null: no pokes. Needs `pokeTokenFile`. `--listen`.";
    };

    pokeTokenFile = mkOption {
      type = types.nullOr (types.strMatching "/.*");
      default = null;
      description = "The token pokes must carry (the notifier's `pokeTokenFile`), read at runtime. `--poke-token-file`.";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the port of `listen` in the firewall, for the notifier's pokes.";
    };

    suspendAfterWake = mkOption {
      type = types.bool;
      default = false;
      description = "Suspend the host again after an update a Wake-on-LAN started. `--suspend-after-wake`.";
    };

    suspendCommand = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "systemctl hibernate";
      description = "The command that suspends the host, split at spaces, no shell (null: `systemctl suspend`). `--suspend-command`.";
    };

    logLevel = mkOption {
      type = types.nullOr (
        types.enum [
          "debug"
          "info"
          "warn"
          "error"
        ]
      );
      default = null;
      description = "debug, info, warn or error (null: info). `--log-level`.";
    };

    window = mkOption {
      type = types.nullOr (types.strMatching (import ../lib/deploy.nix).windowPattern);
      default = null;
      example = "03:00-05:00";
      description = ''
        When the agent may switch: "always", "when-idle" (no graphical session in
        use: none active, or idle for `idleMinutes`, and no idle inhibitor such as a
        game or a full-screen video) or a daily "HH:MM-HH:MM" window in `timeZone`
        (may cross midnight). Null: always. `--window`.
      '';
    };

    outsideWindow = mkOption {
      type = types.nullOr (
        types.enum [
          "boot"
          "wait"
        ]
      );
      default = null;
      description = ''Outside the window: "boot" installs the new system for the next boot now (and switches once the window opens); "wait" does nothing until it opens. Null: boot. `--outside-window`.'';
    };

    idleMinutes = mkOption {
      type = types.nullOr types.ints.positive;
      default = null;
      description = "For the \"when-idle\" window: minutes a graphical session must have been idle (null: 15). `--idle-minutes`.";
    };

    timeZone = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "Europe/Berlin";
      description = "The time zone of a daily window (null: the system's local time). `--time-zone`.";
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
