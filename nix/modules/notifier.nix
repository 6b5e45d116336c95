# services.farm-notifier: follows the builder's event stream and tells a person
# (ntfy) when something breaks or recovers, wakes sleeping hosts (Wake-on-LAN) and
# pokes agents. A DynamicUser service; its ntfy token is a *File option.
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
    if cfg.configFile != null then cfg.configFile else toml.generate "farm-notifier.toml" cfg.settings;

  rendered = flags.notifier {
    config = configFile;
    inherit (cfg)
      builderUrl
      ntfyUrl
      ntfyTopic
      ntfyTokenFile
      secretFiles
      extraArgs
      ;
    stateDir = stateDir;
  };
in
{
  options.services.farm-notifier = {
    enable = lib.mkEnableOption "the farm's notifier (ntfy, Wake-on-LAN, agent pokes)";

    package = mkOption {
      type = types.package;
      default = pkgs.homelab-farm.notifier;
      defaultText = lib.literalExpression "pkgs.homelab-farm.notifier";
      description = "The package that provides `bin/notifier`.";
    };

    builderUrl = mkOption {
      type = types.str;
      default = "http://127.0.0.1:${lib.last (lib.splitString ":" config.services.farm-builder.listen)}";
      defaultText = lib.literalExpression ''"http://127.0.0.1:<port of services.farm-builder.listen>"'';
      description = "The builder whose events are followed. `--builder-url`.";
    };

    ntfyUrl = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "https://ntfy.sh";
      description = "The ntfy server. `--ntfy-url`.";
    };

    ntfyTopic = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "The ntfy topic. `--ntfy-topic`.";
    };

    ntfyTokenFile = mkOption {
      type = types.nullOr (types.strMatching "/.*");
      default = null;
      description = "The ntfy access token, read at runtime. `--ntfy-token-file`.";
    };

    secretFiles = mkOption {
      type = types.attrsOf (types.strMatching "/.*");
      default = { };
      description = "Further secrets, each passed as `--<name>-file` through a systemd credential.";
    };

    settings = mkOption {
      type = toml.type;
      default = { };
      description = "The notifier's configuration file (`--config`), as TOML.";
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
