# services.farm-notifier: follows the builder's event stream and tells a person
# (ntfy) when something breaks or recovers, wakes sleeping hosts (Wake-on-LAN) and
# pokes agents. A DynamicUser service; its ntfy and poke tokens are *File options.
# One option per flag, generated from the program's own flag schema
# (nix/services/flags/notifier.json) by nix/lib/flags.nix; `settings` and the typed
# options of its TOML (`agents`, `wakeOnLan`, ...) are the `--config` file.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;
  cfg = config.services.farm-notifier;
  flags = import ../lib/flags.nix;
  hardening = import ../lib/hardening.nix;
  toml = pkgs.formats.toml { };
  stateDir = "/var/lib/farm-notifier";

  configFile =
    if cfg.configFile != null then
      cfg.configFile
    else
      toml.generate "farm-notifier.toml" (flags.notifierConfig cfg);

  # Every flag's option (but --config and --state-dir, set here) comes from the
  # program's own schema (`notifier -flags-json`, nix/services/flags/notifier.json).
  rendered = flags.notifier (
    cfg
    // {
      config = configFile;
      inherit stateDir;
    }
  );

  wakeTarget = types.submodule {
    options = {
      mac = mkOption {
        type = types.strMatching "([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}";
        description = "The NIC's MAC address.";
      };
      address = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "192.168.1.255:9";
        description = "Where the magic packet goes (host:port; null: 255.255.255.255:9).";
      };
    };
  };
in
{
  imports = [
    (lib.mkChangedOptionModule
      [ "services" "farm-notifier" "builderUrl" ]
      [ "services" "farm-notifier" "builderUrls" ]
      (config: [ config.services.farm-notifier.builderUrl ])
    )
  ];

  options.services.farm-notifier = flags.mkOptions lib {
    schema = flags.schemas.notifier;
    exclude = [
      "config"
      "state-dir"
    ];
    overrides = {
      builderUrls = o: o // {
        type = types.nonEmptyListOf types.str;
        default = [ "http://127.0.0.1:${lib.last (lib.splitString ":" config.services.farm-builder.listen)}" ];
        defaultText = lib.literalExpression ''[ "http://127.0.0.1:<port of services.farm-builder.listen>" ]'';
      };
      ntfyUrl.example = "https://ntfy.sh";
      logLevel.type = types.nullOr (types.enum flags.logLevels);
    };
  }
  // {
    enable = lib.mkEnableOption "the farm's notifier (ntfy, Wake-on-LAN, agent pokes)";

    package = mkOption {
      type = types.package;
      default = pkgs.homelab-farm.notifier;
      defaultText = lib.literalExpression "pkgs.homelab-farm.notifier";
      description = "The package that provides `bin/notifier`.";
    };

    agents = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        malphas = "http://malphas.home.arpa:7741";
      };
      description = "Agents that take pokes: host -> the agent's URL (its `listen`). `[agents]` of the config.";
    };

    wakeOnLan = mkOption {
      type = types.attrsOf (types.either types.str wakeTarget);
      default = { };
      example = {
        malphas = "a8:a1:59:3c:10:7e";
        andras = {
          mac = "00:11:22:33:44:55";
          address = "192.168.1.255:9";
        };
      };
      description = "Hosts the notifier may wake before a deploy: host -> MAC, or { mac; address; }. `[wake_on_lan]` of the config.";
    };

    publicUrl = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "https://farm.home.arpa";
      description = "Where the links in notifications point (null: the builder URL). `public_url` of the config.";
    };

    wakeTimeout = mkOption {
      type = types.nullOr (types.strMatching flags.durationPattern);
      default = null;
      example = "10m";
      description = "How long a woken host has to report (a Go duration; null: 10m). `wake_timeout` of the config.";
    };

    notifySuccess = mkOption {
      type = types.nullOr types.bool;
      default = null;
      description = "Also notify of every switched host (null: false). `notify_success` of the config.";
    };

    secretFiles = mkOption {
      type = types.attrsOf (types.strMatching "/.*");
      default = { };
      description = "Further secrets, each passed as `--<name>-file` through a systemd credential.";
    };

    settings = mkOption {
      type = toml.type;
      default = { };
      description = "Further keys of the notifier's configuration file (`--config`, TOML); the typed options above are written over them.";
    };

    configFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = "A configuration file to use instead of `settings`.";
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Extra command-line arguments.";
    };
  };

  config = lib.mkIf cfg.enable {
    systemd.services.farm-notifier = {
      description = "homelab farm notifier";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [
        "network-online.target"
        "farm-builder.service"
      ];
      serviceConfig = hardening.dynamicUser // {
        User = "farm-notifier";
        ExecStart = flags.execStart (lib.getExe' cfg.package "notifier") rendered;
        LoadCredential = rendered.credentials;
        StateDirectory = "farm-notifier";
        Restart = "on-failure";
        RestartSec = "5s";
      };
    };
  };
}
