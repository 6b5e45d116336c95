# services.farm-builder: the farm's server (`builder serve`): forge webhooks,
# evaluation and builds of the fleet, the signed binary cache, the deploy API.
#
# Typed options map to the program's flags through nix/lib/flags.nix (unit-tested
# offline); every secret is a *File option handed to the unit as a systemd
# credential, so the service runs as a DynamicUser and still reads root-only
# sops secrets. The builder host also emulates aarch64-linux through binfmt.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;
  cfg = config.services.farm-builder;
  flags = import ../lib/flags.nix;
  hardening = import ../lib/hardening.nix;
  farm = import ../farm;
  json = pkgs.formats.json { };
  stateDir = "/var/lib/farm-builder";

  configFile =
    if cfg.configFile != null then cfg.configFile else json.generate "farm-builder.json" cfg.settings;

  rendered = flags.builder {
    config = configFile;
    inherit (cfg)
      listen
      cache
      signingKeyFile
      deployKeyFile
      secretFiles
      extraArgs
      ;
    stateDir = stateDir;
  };

  secretPath = types.nullOr (types.strMatching "/.*");
in
{
  options.services.farm-builder = {
    enable = lib.mkEnableOption "the farm's builder (webhooks, builds, binary cache, deploys)";

    package = mkOption {
      type = types.package;
      default = pkgs.homelab-farm.builder;
      defaultText = lib.literalExpression "pkgs.homelab-farm.builder";
      description = "The package that provides `bin/builder`.";
    };

    listen = mkOption {
      type = types.str;
      default = "127.0.0.1:8080";
      description = "Address of the HTTP server (webhooks, API, cache, dashboard). `--listen`.";
    };

    cache = mkOption {
      type = types.str;
      default = "file://${stateDir}/cache?compression=zstd";
      example = "s3://nix-cache?endpoint=garage.home.arpa:3900&region=garage";
      description = "Where closures are pushed: a directory or S3. `--cache`.";
    };

    signingKeyFile = mkOption {
      type = secretPath;
      default = null;
      description = "The cache signing key (Nix `name:base64`), read at runtime. `--signing-key-file`.";
    };

    deployKeyFile = mkOption {
      type = secretPath;
      default = null;
      description = "The deploy manifest signing key, read at runtime. `--deploy-key-file`.";
    };

    secretFiles = mkOption {
      type = types.attrsOf (types.strMatching "/.*");
      default = { };
      example = {
        webhook-secret = "/run/secrets/webhook-secret";
        github-token = "/run/secrets/github-token";
      };
      description = ''
        Further secrets, each passed as `--<name>-file`. Files stay outside the store
        and reach the unit as systemd credentials.
      '';
    };

    settings = mkOption {
      type = json.type;
      default = { };
      description = "The builder's configuration file (`--config`), as JSON.";
    };

    configFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = "A configuration file to use instead of `settings`.";
    };

    emulatedSystems = mkOption {
      type = types.listOf types.str;
      default = [ "aarch64-linux" ];
      description = "Systems this host builds for through binfmt/qemu.";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the port of `listen` in the firewall.";
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Extra command-line arguments.";
    };
  };

  config = lib.mkIf cfg.enable {
    # Hosts and remotes the builder builds and deploys, from nix/farm.
    services.farm-builder.settings = {
      hosts = lib.mkDefault farm.deployHosts;
      remotes = lib.mkDefault farm.settings.remotes;
      branch = lib.mkDefault farm.settings.branch;
      flakeDir = lib.mkDefault farm.settings.flakeDir;
    };

    boot.binfmt.emulatedSystems = cfg.emulatedSystems;

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [
      (lib.toInt (lib.last (lib.splitString ":" cfg.listen)))
    ];

    systemd.services.farm-builder = {
      description = "homelab farm builder";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [
        "network-online.target"
        "nix-daemon.socket"
      ];
      path = [
        config.nix.package
        pkgs.git
        pkgs.openssh
      ];
      environment = {
        HOME = stateDir;
        XDG_CACHE_HOME = "/var/cache/farm-builder";
      };
      serviceConfig = hardening.dynamicUser // {
        User = "farm-builder";
        ExecStart = flags.execStart (lib.getExe' cfg.package "builder") rendered;
        LoadCredential = rendered.credentials;
        StateDirectory = "farm-builder";
        CacheDirectory = "farm-builder";
        # The Nix daemon's socket, to evaluate and build.
        ReadWritePaths = [ "/nix/var/nix/daemon-socket" ];
        Restart = "on-failure";
        RestartSec = "5s";
        TimeoutStopSec = "2min";
      };
    };
  };
}
