# Unit tests of nix/lib: host discovery, role resolution, which files a host
# imports, the mapping from module options to program flags, and the flake's
# wiring (with stub inputs). Builtins only: runs offline, without nixpkgs.
#
#   nix-instantiate --eval --strict --json nix/tests/run.nix
#
# A case is { name; got; want; } (got must equal want) or { name; throws; } (the
# expression must fail to evaluate; nix/tests/errors.sh checks the messages).
let
  fleetLib = import ../lib { };
  inherit (fleetLib) flags spec util;
  fixtures = fleetLib.hosts ./fixtures/hosts;
  bad = fleetLib.hosts ./fixtures/bad-hosts;
  real = fleetLib.hosts ../hosts;
  farm = import ../farm;
  desktop = fleetLib.roles.desktop.defaults;
  baseName = p: baseNameOf (toString p);

  # The flake's outputs function with stub inputs: nixosSystem/darwinSystem return
  # their arguments, so the wiring of every host can be inspected without nixpkgs.
  stubFlake =
    let
      flake = import ../flake.nix;
      stubs = {
        self = stubs.self;
        nixpkgs.lib.nixosSystem = args: { builtBy = "nixosSystem"; } // args;
        nix-darwin.lib.darwinSystem = args: { builtBy = "darwinSystem"; } // args;
        home-manager.nixosModules.home-manager = "hm-nixos";
        home-manager.darwinModules.home-manager = "hm-darwin";
        sops-nix.nixosModules.sops = "sops-nixos";
        sops-nix.darwinModules.sops = "sops-darwin";
        disko.nixosModules.disko = "disko";
      };
    in
    flake.outputs stubs;
  hostSpecOf =
    modules: builtins.head (builtins.filter (m: builtins.isAttrs m && m ? hostSpec) modules);
in
[
  # --- discovery -------------------------------------------------------------
  {
    name = "hosts are the folders with a default.nix, sorted";
    got = fixtures.names;
    want = [
      "bare"
      "files"
      "overriding"
      "tablet"
    ];
  }
  {
    name = "a missing hosts folder has no hosts";
    got = (fleetLib.hosts ./fixtures/nowhere).names;
    want = [ ];
  }
  {
    name = "a host imports its other .nix files, sorted; not default.nix, _*.nix, other files or folders";
    got = map baseName (fixtures.filesOf "files");
    want = [
      "a.nix"
      "b.nix"
    ];
  }
  {
    name = "a host with only default.nix imports nothing more";
    got = fixtures.filesOf "bare";
    want = [ ];
  }

  # --- inheritance -----------------------------------------------------------
  {
    name = "an empty host inherits its role";
    got = (fixtures.plan "bare").spec;
    want = desktop // {
      role = "desktop";
      primaryUser = "rain";
      hostName = "bare";
      kind = "nixos";
    };
  }
  {
    name = "the role decides the role module";
    got = baseName (fixtures.plan "bare").roleModule;
    want = "desktop.nix";
  }
  {
    name = "a host value overrides a role default";
    got = (fixtures.plan "overriding").spec.gaming;
    want = false;
  }
  {
    name = "a host overrides the role's system within its kind";
    got = (fixtures.plan "overriding").system;
    want = "aarch64-linux";
  }
  {
    name = "nested host values merge with the role's (wakeOnLan.mac keeps enable)";
    got = (fixtures.plan "overriding").spec.wakeOnLan;
    want = {
      enable = true;
      mac = "00:11:22:33:44:55";
    };
  }
  {
    name = "free-form quirks pass through";
    got = (fixtures.plan "overriding").spec.monitors;
    want = 3;
  }
  {
    name = "role defaults a host did not touch stay";
    got = (fixtures.plan "overriding").spec.autoUpgrade;
    want = desktop.autoUpgrade;
  }
  {
    name = "hostName defaults to the folder name, and a host may set it";
    got = [
      (fixtures.plan "bare").spec.hostName
      (fixtures.plan "files").spec.hostName
    ];
    want = [
      "bare"
      "renamed"
    ];
  }
  {
    name = "mkHost's hostValues are only what the host said (role defaults stay mkDefault)";
    got = (fixtures.plan "bare").hostValues;
    want = {
      role = "desktop";
      primaryUser = "rain";
      hostName = "bare";
    };
  }
  {
    name = "the tablet role is touch-first and pulls its updates";
    got = {
      inherit ((fixtures.plan "tablet").spec) touch autoUpgrade kind;
    };
    want = {
      touch = true;
      autoUpgrade = "pull";
      kind = "nixos";
    };
  }
  {
    name = "an unknown role is an evaluation error";
    throws = (bad.plan "laptop").spec;
  }
  {
    name = "a host without primaryUser is an evaluation error";
    throws = (bad.plan "nouser").spec;
  }
  {
    name = "a darwin host with a linux system is an evaluation error";
    throws = (bad.plan "macos-linux").spec;
  }
  {
    name = "spec.resolve rejects an invalid host name";
    throws = spec.resolve "Bad_Name" {
      role = "server";
      primaryUser = "x";
    };
  }
  {
    name = "spec.resolve rejects an unknown autoUpgrade";
    throws = spec.resolve "h" {
      role = "server";
      primaryUser = "x";
      autoUpgrade = "sometimes";
    };
  }

  # --- roles -----------------------------------------------------------------
  {
    name = "there are five roles";
    got = spec.roleNames;
    want = [
      "darwin"
      "desktop"
      "pi"
      "server"
      "tablet"
    ];
  }
  {
    name = "every role's module exists";
    got = map (r: builtins.pathExists fleetLib.roles.${r}.module) spec.roleNames;
    want = map (_: true) spec.roleNames;
  }
  {
    name = "every role sets the same hostSpec defaults";
    got = map (r: builtins.attrNames fleetLib.roles.${r}.defaults) spec.roleNames;
    want = map (_: builtins.attrNames desktop) spec.roleNames;
  }
  {
    name = "roles build for the right kind and platform";
    got = map (r: "${r}=${fleetLib.roles.${r}.kind}/${fleetLib.roles.${r}.defaults.system}") spec.roleNames;
    want = [
      "darwin=darwin/aarch64-darwin"
      "desktop=nixos/x86_64-linux"
      "pi=nixos/aarch64-linux"
      "server=nixos/x86_64-linux"
      "tablet=nixos/x86_64-linux"
    ];
  }
  {
    name = "mapLeaves wraps every leaf (how a role module applies mkDefault)";
    got = util.mapLeaves (v: { wrapped = v; }) {
      a = 1;
      b.c = 2;
    };
    want = {
      a.wrapped = 1;
      b.c.wrapped = 2;
    };
  }

  # --- the real fleet ----------------------------------------------------------
  {
    name = "the fleet's hosts";
    got = real.names;
    want = [
      "andras"
      "malphas"
      "stolas"
      "vassago"
    ];
  }
  {
    name = "every host of the fleet resolves";
    got = builtins.attrNames (builtins.mapAttrs (_: p: builtins.deepSeq p.spec true) real.plans);
    want = real.names;
  }
  {
    name = "malphas: a desktop for rain, with its quirks and two override files";
    got = {
      inherit ((real.plan "malphas").spec)
        role
        primaryUser
        system
        gaming
        gpu
        ;
      files = map baseName (real.plan "malphas").files;
    };
    want = {
      role = "desktop";
      primaryUser = "rain";
      system = "x86_64-linux";
      gaming = true;
      gpu = "amd";
      files = [
        "hardware-configuration.nix"
        "overrides.nix"
      ];
    };
  }
  {
    name = "nixos and darwin hosts are told apart";
    got = [
      (real.namesOfKind "nixos")
      (real.namesOfKind "darwin")
    ];
    want = [
      [
        "andras"
        "malphas"
        "stolas"
      ]
      [ "vassago" ]
    ];
  }
  {
    name = "every fleet host is registered with the farm";
    got = builtins.attrNames farm.hosts;
    want = real.names;
  }
  {
    name = "the farm deploys the hosts marked deploy, wakes the ones with a MAC";
    got = {
      inherit (farm) deployHosts wakeOnLan;
    };
    want = {
      deployHosts = [
        "andras"
        "malphas"
        "stolas"
      ];
      wakeOnLan.malphas = "a8:a1:59:3c:10:7e";
    };
  }

  # --- the flake's wiring (stub inputs) ----------------------------------------
  {
    name = "flake: nixosConfigurations and darwinConfigurations come from the folder tree";
    got = [
      (builtins.attrNames stubFlake.nixosConfigurations)
      (builtins.attrNames stubFlake.darwinConfigurations)
    ];
    want = [
      [
        "andras"
        "malphas"
        "stolas"
      ]
      [ "vassago" ]
    ];
  }
  {
    name = "flake: a NixOS host gets home-manager, sops-nix, disko, host-spec, its role, its spec and files";
    got =
      let
        m = stubFlake.nixosConfigurations.malphas;
      in
      {
        inherit (m) builtBy;
        head = builtins.genList (i: builtins.elemAt m.modules i) 3;
        paths = map baseName (builtins.filter builtins.isPath m.modules);
        spec = (hostSpecOf m.modules).hostSpec;
      };
    want = {
      builtBy = "nixosSystem";
      head = [
        "hm-nixos"
        "sops-nixos"
        "disko"
      ];
      paths = [
        "host-spec.nix"
        "desktop.nix"
        "hardware-configuration.nix"
        "overrides.nix"
      ];
      spec = {
        role = "desktop";
        primaryUser = "rain";
        hostName = "malphas";
        gpu = "amd";
        wakeOnLan.interface = "enp5s0";
        kind = "nixos";
      };
    };
  }
  {
    name = "flake: a darwin host is built by nix-darwin with the darwin modules";
    got =
      let
        m = stubFlake.darwinConfigurations.vassago;
      in
      [
        m.builtBy
        (builtins.elemAt m.modules 0)
        (builtins.elemAt m.modules 1)
        (hostSpecOf m.modules).hostSpec.kind
      ];
    want = [
      "darwinSystem"
      "hm-darwin"
      "sops-darwin"
      "darwin"
    ];
  }
  {
    name = "flake: a NixOS module for each program";
    got = builtins.attrNames stubFlake.nixosModules;
    want = [
      "agent"
      "builder"
      "fleet-pull"
      "host-spec"
      "notifier"
    ];
  }

  # --- options -> flags ----------------------------------------------------------
  {
    name = "builder: typed options become flags; secrets become credentials";
    got = flags.builder {
      config = "/nix/store/x-farm-builder.json";
      listen = "0.0.0.0:8080";
      stateDir = "/var/lib/farm-builder";
      cache = "file:///var/lib/farm-builder/cache?compression=zstd";
      signingKeyFile = "/run/secrets/cache-signing-key";
      deployKeyFile = "/run/secrets/deploy-signing-key";
      secretFiles.webhook-secret = "/run/secrets/webhook-secret";
    };
    want = {
      args = [
        "serve"
        "--config"
        "/nix/store/x-farm-builder.json"
        "--listen"
        "0.0.0.0:8080"
        "--state-dir"
        "/var/lib/farm-builder"
        "--cache"
        "file:///var/lib/farm-builder/cache?compression=zstd"
        "--signing-key-file"
        "%d/signing-key"
        "--deploy-key-file"
        "%d/deploy-key"
        "--webhook-secret-file"
        "%d/webhook-secret"
      ];
      execArgs = [
        ''"serve"''
        ''"--config"''
        ''"/nix/store/x-farm-builder.json"''
        ''"--listen"''
        ''"0.0.0.0:8080"''
        ''"--state-dir"''
        ''"/var/lib/farm-builder"''
        ''"--cache"''
        ''"file:///var/lib/farm-builder/cache?compression=zstd"''
        ''"--signing-key-file"''
        ''"%d/signing-key"''
        ''"--deploy-key-file"''
        ''"%d/deploy-key"''
        ''"--webhook-secret-file"''
        ''"%d/webhook-secret"''
      ];
      credentials = [
        "signing-key:/run/secrets/cache-signing-key"
        "deploy-key:/run/secrets/deploy-signing-key"
        "webhook-secret:/run/secrets/webhook-secret"
      ];
    };
  }
  {
    name = "builder: unset options (null) give no flag and no credential";
    got = flags.builder { listen = ":8080"; };
    want = {
      args = [
        "serve"
        "--listen"
        ":8080"
      ];
      execArgs = [
        ''"serve"''
        ''"--listen"''
        ''":8080"''
      ];
      credentials = [ ];
    };
  }
  {
    name = "notifier: flags and the ntfy token credential";
    got =
      (flags.notifier {
        builderUrl = "http://127.0.0.1:8080";
        stateDir = "/var/lib/farm-notifier";
        ntfyUrl = "https://ntfy.home.arpa";
        ntfyTopic = "farm";
        ntfyTokenFile = "/run/secrets/ntfy-token";
        config = null;
      }).args;
    want = [
      "--builder-url"
      "http://127.0.0.1:8080"
      "--state-dir"
      "/var/lib/farm-notifier"
      "--ntfy-url"
      "https://ntfy.home.arpa"
      "--ntfy-topic"
      "farm"
      "--ntfy-token-file"
      "%d/ntfy-token"
    ];
  }
  {
    name = "agent: numbers as words, repeated --health-check, token as credential";
    got = flags.agent {
      builderUrl = "https://farm.home.arpa";
      host = "malphas";
      tokenFile = "/run/secrets/farm-agent-token";
      deployPublicKeyFile = "/nix/store/x-farm-deploy.pub";
      cacheUrl = "https://farm.home.arpa/nix-cache";
      cachePublicKey = "farm-1:abc=";
      interval = "15m";
      keepGenerations = 5;
      switchMode = "boot";
      healthChecks = [
        "systemctl is-active sshd"
        "true"
      ];
    };
    want = {
      args = [
        "--builder-url"
        "https://farm.home.arpa"
        "--host"
        "malphas"
        "--token-file"
        "%d/token"
        "--deploy-public-key-file"
        "/nix/store/x-farm-deploy.pub"
        "--cache-url"
        "https://farm.home.arpa/nix-cache"
        "--cache-public-key"
        "farm-1:abc="
        "--interval"
        "15m"
        "--keep-generations"
        "5"
        "--switch-mode"
        "boot"
        "--health-check"
        "systemctl is-active sshd"
        "--health-check"
        "true"
      ];
      execArgs = [
        ''"--builder-url"''
        ''"https://farm.home.arpa"''
        ''"--host"''
        ''"malphas"''
        ''"--token-file"''
        ''"%d/token"''
        ''"--deploy-public-key-file"''
        ''"/nix/store/x-farm-deploy.pub"''
        ''"--cache-url"''
        ''"https://farm.home.arpa/nix-cache"''
        ''"--cache-public-key"''
        ''"farm-1:abc="''
        ''"--interval"''
        ''"15m"''
        ''"--keep-generations"''
        ''"5"''
        ''"--switch-mode"''
        ''"boot"''
        ''"--health-check"''
        ''"systemctl is-active sshd"''
        ''"--health-check"''
        ''"true"''
      ];
      credentials = [ "token:/run/secrets/farm-agent-token" ];
    };
  }
  {
    name = "ExecStart quoting: %, $, quotes and backslashes reach the program unchanged";
    got = flags.quote ''a%b $HOME "q" \x'';
    want = ''"a%%b $$HOME \"q\" \\x"'';
  }
  {
    name = "execStart puts the program first";
    got = flags.execStart "/nix/store/p/bin/builder" (flags.builder { listen = ":1"; });
    want = ''"/nix/store/p/bin/builder" "serve" "--listen" ":1"'';
  }
  {
    name = "extra args come last, unchanged";
    got =
      (flags.agent {
        host = "h";
        extraArgs = [ "--verbose" ];
      }).args;
    want = [
      "--host"
      "h"
      "--verbose"
    ];
  }
  {
    name = "builder: the newer flags; the admin token is a credential";
    got = flags.builder {
      adminTokenFile = "/run/secrets/admin-token";
      agentTokensDir = "/nix/store/x-farm-agent-tokens";
      flakeDir = "nix";
      builders = "ssh-ng://mac aarch64-darwin";
      maxSilentTime = "30m";
      buildTimeout = "4h";
      evalMemory = 4294967296;
      cachePublicUrl = "https://farm.home.arpa/nix-cache";
    };
    want = {
      args = [
        "serve"
        "--admin-token-file"
        "%d/admin-token"
        "--agent-tokens-dir"
        "/nix/store/x-farm-agent-tokens"
        "--flake-dir"
        "nix"
        "--builders"
        "ssh-ng://mac aarch64-darwin"
        "--max-silent-time"
        "30m"
        "--build-timeout"
        "4h"
        "--eval-memory"
        "4294967296"
        "--cache-public-url"
        "https://farm.home.arpa/nix-cache"
      ];
      execArgs = map flags.quote [
        "serve"
        "--admin-token-file"
      ]
      ++ [ ''"%d/admin-token"'' ]
      ++ map flags.quote [
        "--agent-tokens-dir"
        "/nix/store/x-farm-agent-tokens"
        "--flake-dir"
        "nix"
        "--builders"
        "ssh-ng://mac aarch64-darwin"
        "--max-silent-time"
        "30m"
        "--build-timeout"
        "4h"
        "--eval-memory"
        "4294967296"
        "--cache-public-url"
        "https://farm.home.arpa/nix-cache"
      ];
      credentials = [ "admin-token:/run/secrets/admin-token" ];
    };
  }
  {
    name = "notifier: the poke token is a credential; the log level a flag";
    got = flags.notifier {
      pokeTokenFile = "/run/secrets/farm-poke-token";
      logLevel = "debug";
    };
    want = {
      args = [
        "--poke-token-file"
        "%d/poke-token"
        "--log-level"
        "debug"
      ];
      execArgs = [
        ''"--poke-token-file"''
        ''"%d/poke-token"''
        ''"--log-level"''
        ''"debug"''
      ];
      credentials = [ "poke-token:/run/secrets/farm-poke-token" ];
    };
  }
  {
    name = "agent: pokes, suspend, links; --systemd-health written out either way, --suspend-after-wake only when true";
    got = map (c: (flags.agent c).args) [
      {
        listen = ":7741";
        pokeTokenFile = "/run/secrets/farm-poke-token";
        suspendAfterWake = true;
        suspendCommand = "systemctl hibernate";
        currentSystem = "/run/current-system";
        profile = "/nix/var/nix/profiles/system";
        stateDir = "/var/lib/farm-agent";
        store = "local?root=/mnt";
      }
      {
        systemdHealth = true;
        suspendAfterWake = false;
      }
      { systemdHealth = false; }
    ];
    want = [
      [
        "--current-system"
        "/run/current-system"
        "--profile"
        "/nix/var/nix/profiles/system"
        "--store"
        "local?root=/mnt"
        "--state-dir"
        "/var/lib/farm-agent"
        "--listen"
        ":7741"
        "--poke-token-file"
        "%d/poke-token"
        "--suspend-after-wake"
        "--suspend-command"
        "systemctl hibernate"
      ]
      [ "--systemd-health=true" ]
      [ "--systemd-health=false" ]
    ];
  }
  {
    name = "agent tokens: one symlink per host into the builder's credentials";
    got = flags.agentTokenLinks "/run/credentials/farm-builder.service" [
      "andras"
      "malphas"
    ];
    want = [
      {
        name = "andras";
        path = "/run/credentials/farm-builder.service/agent-token-andras";
      }
      {
        name = "malphas";
        path = "/run/credentials/farm-builder.service/agent-token-malphas";
      }
    ];
  }
  {
    name = "host names a token file and a credential can carry";
    got = map flags.validHostName [
      "malphas"
      "pi-4"
      "../x"
      ".hidden"
      "a:b"
    ];
    want = [
      true
      true
      false
      false
      false
    ];
  }
  {
    name = "notifier config: typed values over settings, nulls and empty tables left out";
    got = flags.notifierConfig {
      settings = {
        public_url = "https://old";
        other = 1;
      };
      publicUrl = "https://farm.home.arpa";
      notifySuccess = false;
      wakeTimeout = null;
      agents = { };
      wakeOnLan = {
        malphas = "a8:a1:59:3c:10:7e";
        andras = {
          mac = "00:11:22:33:44:55";
          address = null;
        };
      };
    };
    want = {
      public_url = "https://farm.home.arpa";
      other = 1;
      notify_success = false;
      wake_on_lan = {
        malphas = "a8:a1:59:3c:10:7e";
        andras = "00:11:22:33:44:55";
      };
    };
  }
  {
    name = "Go durations: accepted and refused";
    got = map (d: builtins.match flags.durationPattern d != null) [
      "15m"
      "1h30m"
      "1.5h"
      "500ms"
      "15"
      "m"
      "1d"
    ];
    want = [
      true
      true
      true
      true
      false
      false
      false
    ];
  }
  {
    name = "builder repository: clone_url per remote and sync_remotes from the fleet's settings";
    got = farm.repositoryFor (
      farm.settings
      // {
        syncRemotes = true;
        remotes = [
          {
            name = "github";
            forge = "github";
            url = "https://github.com/o/r";
            cloneUrl = "ssh://git@github.com/o/r.git";
          }
          {
            name = "home";
            forge = "forgejo";
            url = "https://git.home.arpa/o/r";
          }
        ];
      }
    ) "/run/credentials/farm-builder.service";
    want = {
      name = "fleet";
      deploy_branch = "main";
      sync_remotes = true;
      remote = [
        {
          forge = "github";
          url = "https://github.com/o/r";
          clone_url = "ssh://git@github.com/o/r.git";
          secret_files = [ "/run/credentials/farm-builder.service/webhook-secret-github" ];
          token_file = "/run/credentials/farm-builder.service/status-token-github";
        }
        {
          forge = "forgejo";
          url = "https://git.home.arpa/o/r";
          secret_files = [ "/run/credentials/farm-builder.service/webhook-secret-home" ];
          token_file = "/run/credentials/farm-builder.service/status-token-home";
        }
      ];
    };
  }
  {
    name = "the notifier pokes every deployed host's agent at <host>.<domain>:<pokePort>";
    got = farm.agents;
    want = {
      andras = "http://andras.home.arpa:7741";
      malphas = "http://malphas.home.arpa:7741";
      stolas = "http://stolas.home.arpa:7741";
    };
  }
  {
    name = "every secret flag of every program ends in -file";
    got = builtins.filter (e: e.type == "secret" && !(util.hasSuffix "-file" e.flag)) (
      flags.schemas.builder ++ flags.schemas.notifier ++ flags.schemas.agent
    );
    want = [ ];
  }

  # --- hardening ---------------------------------------------------------------
  {
    name = "builder and notifier run as a DynamicUser without capabilities";
    got = {
      inherit ((import ../lib/hardening.nix).dynamicUser)
        DynamicUser
        NoNewPrivileges
        ProtectSystem
        CapabilityBoundingSet
        ;
    };
    want = {
      DynamicUser = true;
      NoNewPrivileges = true;
      ProtectSystem = "strict";
      CapabilityBoundingSet = "";
    };
  }
  {
    name = "the agent keeps root and nothing that would break activation (hostname, umask, /tmp)";
    got = builtins.filter (k: (import ../lib/hardening.nix).rootService ? ${k}) [
      "DynamicUser"
      "ProtectHostname"
      "UMask"
      "PrivateTmp"
      "ProtectSystem"
    ];
    want = [ ];
  }
]
