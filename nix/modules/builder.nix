# services.farm-builder: the farm's server (`builder serve`): forge webhooks,
# evaluation and builds of the fleet, the signed binary cache, the deploy API.
#
# Typed options map to the program's flags through nix/lib/flags.nix (unit-tested
# offline); the rest of its configuration is `settings`, written as the TOML file
# of `--config` (see examples/builder.toml). Every secret is a file handed to the
# unit as a systemd credential, so the service runs as a DynamicUser and still
# reads root-only sops secrets: the key files through their flags, the webhook
# secrets and forge tokens that `settings` names through `credentials` (readable at
# `credentialsDir`/<name>), each host's agent token through `agentTokenFiles` (the
# `--agent-tokens-dir` is a store directory of symlinks into the credentials, so
# the store holds no token). The builder host also emulates aarch64-linux (binfmt).
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
  toml = pkgs.formats.toml { };
  stateDir = "/var/lib/farm-builder";

  configFile =
    if cfg.configFile != null then cfg.configFile else toml.generate "farm-builder.toml" cfg.settings;

  # One symlink per host into the credentials directory: no secret in the store.
  agentTokensLinks = pkgs.linkFarm "farm-agent-tokens" (
    flags.agentTokenLinks cfg.credentialsDir (builtins.attrNames cfg.agentTokenFiles)
  );

  rendered = flags.builder {
    config = configFile;
    inherit (cfg)
      listen
      cache
      queue
      workers
      signingKeyFile
      deployKeyFile
      adminTokenFile
      agentTokensDir
      flakeDir
      maxSilentTime
      buildTimeout
      cachePublicUrl
      secretFiles
      extraArgs
      ;
    builders = if cfg.builders == [ ] then null else lib.concatStringsSep " ; " cfg.builders;
    evalMemory = if cfg.evalMemoryMiB == null then null else cfg.evalMemoryMiB * 1048576;
    stateDir = stateDir;
  };

  secretPath = types.nullOr (types.strMatching "/.*");
  duration = types.nullOr (types.strMatching flags.durationPattern);
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
      default = "file://${stateDir}/cache";
      example = "s3://nix-cache?endpoint=garage.home.arpa:3900&region=garage";
      description = "Where closures are pushed and served from: a directory or S3. `--cache`.";
    };

    queue = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "postgres://farm@db.home.arpa/farm";
      description = "The queue: null for the embedded SQLite file, or PostgreSQL to share work. `--queue`.";
    };

    workers = mkOption {
      type = types.nullOr types.ints.positive;
      default = null;
      description = "Evaluation workers (null: the program's default). `--workers`.";
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

    adminTokenFile = mkOption {
      type = secretPath;
      default = null;
      description = "The token for manual triggers (`POST /api/evaluations`); null refuses them. `--admin-token-file`.";
    };

    agentTokenFiles = mkOption {
      type = types.attrsOf (types.strMatching "/.*");
      default = { };
      example = {
        malphas = "/run/secrets/agent-token-malphas";
      };
      description = ''
        Each host's agent token (host name -> secret file), with which its agent
        reports to the builder. Each is a systemd credential `agent-token-<host>`;
        `agentTokensDir` defaults to a directory of symlinks to them.
      '';
    };

    agentTokensDir = mkOption {
      type = types.nullOr types.path;
      default = if cfg.agentTokenFiles == { } then null else agentTokensLinks;
      defaultText = lib.literalMD "a store directory of symlinks `<host>` -> `<credentialsDir>/agent-token-<host>`, one per `agentTokenFiles` entry; null if there is none";
      description = "A directory with one file per host holding its agent token; null accepts no reports. `--agent-tokens-dir`.";
    };

    flakeDir = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "nix";
      description = "The fleet flake's directory inside the repository (null: the program's, `nix`). `--flake-dir`.";
    };

    builders = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "ssh-ng://mac.home.arpa aarch64-darwin" ];
      description = "Nix remote builders, one machine each (empty: Nix's own `builders` setting). `--builders`.";
    };

    maxSilentTime = mkOption {
      type = duration;
      default = null;
      example = "30m";
      description = "Fail a build silent this long (a Go duration; null: 30m). `--max-silent-time`.";
    };

    buildTimeout = mkOption {
      type = duration;
      default = null;
      example = "4h";
      description = "Fail a build running this long (a Go duration; null: 4h). `--build-timeout`.";
    };

    evalMemoryMiB = mkOption {
      type = types.nullOr types.ints.positive;
      default = null;
      example = 4096;
      description = "Memory budget of one host's evaluation, in MiB (null: a quarter of free memory, 2-4 GiB). `--eval-memory` (in bytes).";
    };

    cachePublicUrl = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "https://farm.home.arpa/nix-cache";
      description = "The substituter URL hosts realise closures from (null: `<public_url>/nix-cache`). `--cache-public-url`.";
    };

    credentials = mkOption {
      type = types.attrsOf (types.strMatching "/.*");
      default = { };
      example = {
        webhook-secret-github = "/run/secrets/webhook-secret-github";
      };
      description = ''
        Secret files the configuration refers to (webhook secrets, forge tokens),
        loaded as systemd credentials: `settings` names them as
        `''${config.services.farm-builder.credentialsDir}/<name>`.
      '';
    };

    credentialsDir = mkOption {
      type = types.str;
      default = "/run/credentials/farm-builder.service";
      readOnly = true;
      description = "Where the unit sees its credentials.";
    };

    secretFiles = mkOption {
      type = types.attrsOf (types.strMatching "/.*");
      default = { };
      description = "Further secrets, each passed as `--<name>-file` through a systemd credential.";
    };

    settings = mkOption {
      type = toml.type;
      default = { };
      example = lib.literalExpression ''
        {
          public_url = "https://farm.home.arpa";
          repository = [ {
            name = "fleet";
            deploy_branch = "main";
            remote = [ {
              forge = "github";
              url = "https://github.com/alice/homelab";
              secret_files = [ "/run/credentials/farm-builder.service/webhook-secret-github" ];
            } ];
          } ];
        }
      '';
      description = "The builder's configuration (`--config`, TOML; see examples/builder.toml).";
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
    assertions = [
      {
        assertion = builtins.all flags.validHostName (builtins.attrNames cfg.agentTokenFiles);
        message = "services.farm-builder.agentTokenFiles: host names must be letters, digits, '-' or '_'.";
      }
    ];

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
        LoadCredential =
          rendered.credentials
          ++ lib.mapAttrsToList (h: p: "${flags.agentTokenCredential h}:${p}") cfg.agentTokenFiles
          ++ lib.mapAttrsToList (n: p: "${n}:${p}") cfg.credentials;
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
