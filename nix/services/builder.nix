# services.farm-builder: the farm's server (`builder serve`): forge webhooks,
# evaluation and builds of the fleet, the signed binary cache, the deploy API.
# Usable from any flake (the flake exports it as nixosModules.builder): it needs
# nothing of this fleet.
#
# One option per flag of `builder serve`, generated from the program's own flag
# schema (nix/services/flags/builder-serve.json) by nix/lib/flags.nix; the rest of its configuration is `settings`, written as the TOML file
# of `--config` (see examples/builder.toml). Every secret is a file handed to the
# unit as a systemd credential, so the service runs as a DynamicUser and still
# reads root-only sops secrets: the cache key through its flag, the webhook
# secrets and forge tokens that `settings` names through `credentials` (readable at
# `credentialsDir`/<name>), each host's agent token through `agentTokenFiles` (the
# `--agent-tokens-dir` is a store directory of symlinks into the credentials, so
# the store holds no token).
#
# What a pushed branch can reach: the unit writes only its state directory
# (ProtectSystem=strict; the root-owned directories of the Nix daemon's and the
# signer's sockets are the only other writable mounts, to connect to). The deploy key is not the builder's: a
# separate `farm-signer` service (its own user, the key as its only credential)
# signs manifests on a socket only the builder's unit may connect to (group
# farm-signer-clients, mode 0660), and the builder asks it (`--deploy-signer`).
# The builder is not a trusted Nix user: remote builders are the daemon's
# (nix.buildMachines), not a flag a client could pass.
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
  signerDir = "/run/farm-signer";
  signerSocket = "${signerDir}/socket";
  signerGroup = "farm-signer-clients";
  useSigner = cfg.deployKeyFile != null && cfg.separateSigner;
  # The directories of the sockets the builder connects to (connecting needs them
  # writable under ProtectSystem=strict; both are root's 0755, so the builder still
  # creates nothing there). Directories, not the socket files: a bind mount of a
  # socket file would keep the old socket when the daemon or the signer makes a new one.
  daemonSocketDir = "/nix/var/nix/daemon-socket";

  configFile =
    if cfg.configFile != null then cfg.configFile else toml.generate "farm-builder.toml" cfg.settings;

  # One symlink per host into the credentials directory: no secret in the store.
  agentTokensLinks = pkgs.linkFarm "farm-agent-tokens" (
    flags.agentTokenLinks cfg.credentialsDir (builtins.attrNames cfg.agentTokenFiles)
  );

  # Every flag's option (but those this module sets itself) comes from the
  # program's own schema (`builder serve -flags-json`,
  # nix/services/flags/builder-serve.json): the values of cfg under those names
  # are the command line.
  rendered = flags.builder (
    cfg
    // {
      config = configFile;
      inherit stateDir;
      deployKeyFile = if useSigner then null else cfg.deployKeyFile;
      deploySigner = if useSigner then "unix:${signerSocket}" else null;
      # The removed option (imports, below): never a flag.
      builders = null;
    }
  );

  signer = flags.signer {
    socket = null; # systemd's socket unit hands it over (LISTEN_FDS)
    inherit (cfg) deployKeyFile;
    stateDir = "/var/lib/farm-signer";
  };

in
{
  imports = [
    (lib.mkChangedOptionModule
      [ "services" "farm-builder" "evalMemoryMiB" ]
      [ "services" "farm-builder" "evalMemory" ]
      (config: config.services.farm-builder.evalMemoryMiB * 1048576)
    )
    (lib.mkRemovedOptionModule [ "services" "farm-builder" "builders" ] ''
      The builder is not a trusted Nix user, so the daemon ignores a `builders` it
      passes: declare remote builders for the daemon (nix.buildMachines,
      nix.distributedBuilds) and every build of the farm uses them.
    '')
  ];

  options.services.farm-builder = flags.mkOptions lib {
    schema = flags.schemas.builder;
    # Set here: the TOML of `settings`, the state directory the unit owns, the
    # signer's socket, the tokens' directory (agentTokensDir below); `builders` is
    # the daemon's business (nix.buildMachines).
    exclude = [
      "config"
      "state-dir"
      "deploy-signer"
      "agent-tokens-dir"
      "builders"
    ];
    overrides = {
      listen.type = types.str;
      listen.default = "127.0.0.1:8080";
      cache.type = types.str;
      cache.default = "file://${stateDir}/cache";
      cache.example = "s3://nix-cache?endpoint=garage.home.arpa:3900&region=garage";
      queue.example = "postgres://farm@db.home.arpa/farm";
      workers.type = types.nullOr types.ints.positive;
      deployKeyFile.description = ''
        The deploy manifest signing key, read at runtime. With `separateSigner` (the
        default) only the `farm-signer` service reads it and the builder asks that
        service to sign (`--deploy-signer`); else the builder reads it itself
        (`--deploy-key-file`).
      '';
      flakeDir.example = "nix";
      evalMemory.example = "4GiB";
      cachePublicUrl.example = "https://farm.home.arpa/nix-cache";
      logLevel.type = types.nullOr (types.enum flags.logLevels);
    };
  }
  // {
    enable = lib.mkEnableOption "the farm's builder (webhooks, builds, binary cache, deploys)";

    package = mkOption {
      type = types.package;
      default = pkgs.homelab-farm.builder;
      defaultText = lib.literalExpression "pkgs.homelab-farm.builder";
      description = "The package that provides `bin/builder`.";
    };

    separateSigner = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Sign deploy manifests in a separate service (`builder signer`, its own
        user, the deploy key its only credential) on a socket only the builder's
        unit can connect to, so nothing the builder runs (evaluations of pushed
        branches, builds, git) can read the deploy key.
      '';
    };

    tls = {
      enable = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Terminate TLS in front of the builder with Caddy (services.caddy), which
          gets a certificate for `tls.hostName` by ACME: the name must be one a
          public CA issues for (a `.home.arpa` name is not), reachable on port 80
          or 443. Opens ports 80 and 443; `listen` should stay on 127.0.0.1.
        '';
      };
      hostName = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "farm.example.org";
        description = "The name hosts reach the builder by (`https://<hostName>`).";
      };
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
        message = "services.farm-builder.agentTokenFiles: every name must be a host name (lowercase letters, digits, '-').";
      }
      {
        assertion = !cfg.tls.enable || cfg.tls.hostName != null;
        message = "services.farm-builder.tls.enable needs tls.hostName.";
      }
    ];

    boot.binfmt.emulatedSystems = cfg.emulatedSystems;

    networking.firewall.allowedTCPPorts =
      lib.optional cfg.openFirewall (lib.toInt (lib.last (lib.splitString ":" cfg.listen)))
      ++ lib.optionals cfg.tls.enable [
        80
        443
      ];

    services.caddy = lib.mkIf cfg.tls.enable {
      enable = true;
      virtualHosts.${cfg.tls.hostName}.extraConfig = ''
        reverse_proxy ${
          let
            addr = lib.head (lib.splitString ":" cfg.listen);
          in
          if addr == "" || addr == "0.0.0.0" then "127.0.0.1" else addr
        }:${lib.last (lib.splitString ":" cfg.listen)}
      '';
    };

    users.groups.${signerGroup} = lib.mkIf useSigner { };

    systemd.services.farm-builder = {
      description = "homelab farm builder";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      requires = lib.optional useSigner "farm-signer.socket";
      after = [
        "network-online.target"
        "nix-daemon.socket"
      ]
      ++ lib.optional useSigner "farm-signer.socket";
      path = [
        config.nix.package
        pkgs.git
        pkgs.openssh
      ];
      environment = {
        HOME = stateDir;
        XDG_CACHE_HOME = "${stateDir}/.cache";
      };
      serviceConfig = hardening.dynamicUser // {
        User = "farm-builder";
        ExecStart = flags.execStart (lib.getExe' cfg.package "builder") rendered;
        LoadCredential =
          rendered.credentials
          ++ lib.mapAttrsToList (h: p: "${flags.agentTokenCredential h}:${p}") cfg.agentTokenFiles
          ++ lib.mapAttrsToList (n: p: "${n}:${p}") cfg.credentials;
        StateDirectory = "farm-builder";
        # Read-only everywhere but the state directory (ProtectSystem=strict); the
        # two root-owned socket directories are the only other writable mounts.
        ReadWritePaths = [ daemonSocketDir ] ++ lib.optional useSigner signerDir;
        SupplementaryGroups = lib.optional useSigner signerGroup;
        Restart = "on-failure";
        RestartSec = "5s";
        TimeoutStopSec = "2min";
      };
    };

    # The signer: the only unit that reads the deploy key. systemd makes its socket
    # (group farm-signer-clients, 0660: the builder's unit is the only member) and
    # starts the signer on the first connection.
    systemd.sockets.farm-signer = lib.mkIf useSigner {
      description = "homelab farm deploy signer socket";
      wantedBy = [ "sockets.target" ];
      listenStreams = [ signerSocket ];
      socketConfig = {
        SocketUser = "root";
        SocketGroup = signerGroup;
        SocketMode = "0660";
        DirectoryMode = "0755";
      };
    };

    systemd.services.farm-signer = lib.mkIf useSigner {
      description = "homelab farm deploy signer";
      requires = [ "farm-signer.socket" ];
      after = [ "farm-signer.socket" ];
      serviceConfig = hardening.dynamicUser // {
        User = "farm-signer";
        ExecStart = flags.execStart (lib.getExe' cfg.package "builder") signer;
        LoadCredential = signer.credentials;
        StateDirectory = "farm-signer";
        # It answers on the socket systemd hands it and needs no network.
        PrivateNetwork = true;
        RestrictAddressFamilies = [ "AF_UNIX" ];
        Restart = "on-failure";
        RestartSec = "5s";
      };
    };
  };
}
