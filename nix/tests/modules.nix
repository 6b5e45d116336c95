# Unit tests of the fleet's modules, evaluated with nixpkgs' real lib.evalModules
# (eval.nix): options -> ExecStart, secrets -> credentials, who gets which
# credential, hardening, timers, roles and features as NixOS merges them, and a
# host's plain value beating the roles. Same case format as lib.nix. Hosts named
# here are the example fleet's snapshot (fixtures/fleet).
{ lib }:
let
  e = import ./eval.nix { inherit lib; };
  inherit (e) failedAssertions;
  fleet = import ./fixtures/fleet;
  farm = fleet;
  flags = import ../lib/flags.nix;
  store = e.pkgs.store;

  # A fleet like the example one with other settings (no admin key, an https URL).
  fleetWith =
    settings:
    import ../lib/fleet.nix {
      hostsDir = ./fixtures/fleet/hosts;
      secretsDir = ./fixtures/fleet/secrets;
      settings = fleet.settings // settings;
    };
  # A fixture host of fixtures/hosts (role and flags set there), in the example fleet.
  fixtureFleet = import ../lib/fleet.nix {
    hostsDir = ./fixtures/hosts;
    secretsDir = ./fixtures/fleet/secrets;
    settings = fleet.settings;
  };

  real = e.host fleet;
  fixture = e.host fixtureFleet;
  # A host of the example fleet with one more module.
  realWith =
    name: extra:
    e.eval {
      inherit fleet;
      modules = (fleet.plan name).modules ++ [ extra ];
    };
  # The farm's service modules alone, on a host named `name` (no roles, no features).
  host =
    name: extra:
    e.nixos {
      inherit fleet;
      modules = [
        ../fleet/nixos.nix
        (
          { lib, ... }:
          {
            options.hostSpec = lib.mkOption { type = lib.types.attrs; };
            config = {
              hostSpec.hostName = name;
              networking.hostName = name;
            };
          }
        )
        extra
      ];
    };

  stolas = real "stolas";
  malphas = real "malphas";
  unit = c: name: c.systemd.services.${name};
  q = s: ''"${s}"'';
  has = needle: haystack: builtins.match ".*${lib.escapeRegex needle}.*" haystack != null;

  tuned = host "vassal" {
    services.farm-builder = {
      enable = true;
      workers = 4;
      adminTokenFile = "/run/secrets/admin-token";
      maxSilentTime = "20m";
      buildTimeout = "2h30m";
      evalMemoryMiB = 4096;
      flakeDir = "fleet";
      cachePublicUrl = "https://cache.example.org";
    };
    services.farm-agent = {
      enable = true;
      healthTimeout = "90s";
      systemdHealth = false;
      switchTimeout = "15m";
      currentSystem = "/run/booted-system";
      profile = "/nix/var/nix/profiles/test";
      listen = "127.0.0.1:7000";
      suspendAfterWake = true;
      suspendCommand = "systemctl hibernate";
      logLevel = "debug";
      openFirewall = false;
    };
  };

  # A service module exported by the flake, in a configuration without this
  # fleet: no hostSpec, no overlay (pkgs lacks homelab-farm), no `fleet`.
  stubSelf = {
    packages.x86_64-linux = {
      builder = e.pkgs.homelab-farm.builder // { outPath = store "exported-builder"; };
      notifier = e.pkgs.homelab-farm.notifier // { outPath = store "exported-notifier"; };
      agent = e.pkgs.homelab-farm.agent // { outPath = store "exported-agent"; };
    };
  };
  exportedModules =
    ((import ../flake.nix).outputs {
      self = stubSelf;
      nixpkgs = { };
      nix-darwin = { };
      home-manager = { };
      sops-nix = { };
      disko = { };
    }).nixosModules;
  foreign =
    modules:
    (lib.evalModules {
      modules = [
        ./nixos/options.nix
        { _module.args.pkgs = builtins.removeAttrs e.pkgs [ "homelab-farm" ]; }
        { networking.hostName = "elsewhere"; }
      ]
      ++ modules;
    }).config;
in
[
  # --- the builder ------------------------------------------------------------------
  {
    name = "builder: ExecStart from the options; the deploy key is the signer's, not a flag of the builder";
    got = (unit stolas "farm-builder").serviceConfig.ExecStart;
    want = builtins.concatStringsSep " " (
      map q [
        "${store "homelab-farm-builder"}/bin/builder"
        "serve"
        "--config"
        (store "farm-builder.toml")
        "--listen"
        "0.0.0.0:8080"
        "--state-dir"
        "/var/lib/farm-builder"
        "--cache"
        "file:///var/lib/farm-builder/cache"
        "--signing-key-file"
        "%d/signing-key"
        "--agent-tokens-dir"
        (store "farm-agent-tokens")
        "--flake-dir"
        "nix"
        "--deploy-signer"
        "unix:/run/farm-signer/socket"
        "--cache-public-url"
        farm.settings.cacheUrl
      ]
    );
  }
  {
    name = "builder: cache key, every deployed host's agent token, every remote's secrets are its credentials; the deploy key is not";
    got = (unit stolas "farm-builder").serviceConfig.LoadCredential;
    want = [
      "signing-key:/run/secrets/cache-signing-key"
      "agent-token-andras:/run/secrets/agent-token-andras"
      "agent-token-malphas:/run/secrets/agent-token-malphas"
      "agent-token-stolas:/run/secrets/agent-token-stolas"
      "status-token-codeberg:/run/secrets/status-token-codeberg"
      "status-token-github:/run/secrets/status-token-github"
      "status-token-home:/run/secrets/status-token-home"
      "webhook-secret-codeberg:/run/secrets/webhook-secret-codeberg"
      "webhook-secret-github:/run/secrets/webhook-secret-github"
      "webhook-secret-home:/run/secrets/webhook-secret-home"
    ];
  }
  {
    name = "builder: writes only its state directory; connects to the daemon's and the signer's sockets";
    got = {
      inherit ((unit stolas "farm-builder").serviceConfig)
        DynamicUser
        StateDirectory
        ReadWritePaths
        ProtectSystem
        ProtectHome
        PrivateTmp
        SupplementaryGroups
        ;
      cacheDirectory = (unit stolas "farm-builder").serviceConfig ? CacheDirectory;
      xdgCache = (unit stolas "farm-builder").environment.XDG_CACHE_HOME;
    };
    want = {
      DynamicUser = true;
      StateDirectory = "farm-builder";
      ReadWritePaths = [
        "/nix/var/nix/daemon-socket"
        "/run/farm-signer"
      ];
      ProtectSystem = "strict";
      ProtectHome = true;
      PrivateTmp = true;
      SupplementaryGroups = [ "farm-signer-clients" ];
      cacheDirectory = false;
      xdgCache = "/var/lib/farm-builder/.cache";
    };
  }
  {
    name = "signer: its own user, the deploy key its only credential, no network, the socket only the builder's group reaches";
    got =
      let
        s = unit stolas "farm-signer";
        sock = stolas.systemd.sockets.farm-signer;
      in
      {
        inherit (s.serviceConfig)
          User
          DynamicUser
          LoadCredential
          PrivateNetwork
          RestrictAddressFamilies
          ProtectSystem
          ;
        exec = s.serviceConfig.ExecStart;
        socket = sock.listenStreams;
        inherit (sock.socketConfig) SocketGroup SocketMode;
        groupMembers = builtins.attrNames (
          lib.filterAttrs (_: u: builtins.elem "farm-signer-clients" (u.serviceConfig.SupplementaryGroups or [ ])) stolas.systemd.services
        );
        builderNeedsSocket = (unit stolas "farm-builder").requires;
      };
    want = {
      User = "farm-signer";
      DynamicUser = true;
      LoadCredential = [ "deploy-key:/run/secrets/deploy-signing-key" ];
      PrivateNetwork = true;
      RestrictAddressFamilies = [ "AF_UNIX" ];
      ProtectSystem = "strict";
      exec = builtins.concatStringsSep " " (
        map q [
          "${store "homelab-farm-builder"}/bin/builder"
          "signer"
          "--deploy-key-file"
          "%d/deploy-key"
          "--state-dir"
          "/var/lib/farm-signer"
        ]
      );
      socket = [ "/run/farm-signer/socket" ];
      SocketGroup = "farm-signer-clients";
      SocketMode = "0660";
      groupMembers = [ "farm-builder" ];
      builderNeedsSocket = [ "farm-signer.socket" ];
    };
  }
  {
    name = "builder: separateSigner = false gives the key to the builder and makes no signer";
    got =
      let
        c = realWith "stolas" { services.farm-builder.separateSigner = false; };
      in
      {
        exec = has ''"--deploy-key-file" "%d/deploy-key"'' (unit c "farm-builder").serviceConfig.ExecStart;
        signer = c.systemd.services ? farm-signer;
      };
    want = {
      exec = true;
      signer = false;
    };
  }
  {
    name = "builder: not a trusted Nix user; remote builders are the daemon's, never --builders";
    got = {
      trusted = stolas.nix.settings.trusted-users;
      flag = has "--builders" (unit stolas "farm-builder").serviceConfig.ExecStart;
    };
    want = {
      trusted = [ "root" ];
      flag = false;
    };
  }
  {
    name = "builder: the removed `builders` option is an error that says where remote builders go";
    got = map (m: builtins.match ".*(nix.buildMachines).*" m != null) (
      failedAssertions (realWith "stolas" { services.farm-builder.builders = [ "ssh-ng://mac aarch64-darwin" ]; })
    );
    want = [ true ];
  }
  {
    name = "builder: the builder host emulates aarch64-linux (it builds the Pis and their images)";
    got = stolas.boot.binfmt.emulatedSystems;
    want = [ "aarch64-linux" ];
  }
  {
    name = "builder: its TOML config names the fleet's remotes and reads their secrets as credentials";
    got = stolas.services.farm-builder.settings;
    want = {
      public_url = farm.settings.builderUrl;
      repository = [ (farm.repositoryFor farm.settings "/run/credentials/farm-builder.service") ];
    };
  }
  {
    name = "builder: a host's plain signingKeyFile beats the sops default";
    got = builtins.head (unit (realWith "stolas" { services.farm-builder.signingKeyFile = "/etc/farm/cache.key"; }) "farm-builder").serviceConfig.LoadCredential;
    want = "signing-key:/etc/farm/cache.key";
  }
  {
    name = "builder: not enabled, no unit";
    got = malphas.systemd.services ? farm-builder;
    want = false;
  }
  {
    name = "builder: --agent-tokens-dir is a store directory of symlinks <host> -> its credential (no token in the store)";
    got = stolas.services.farm-builder.agentTokensDir.entries;
    want = map (h: {
      name = h;
      path = "/run/credentials/farm-builder.service/agent-token-${h}";
    }) farm.deployHosts;
  }
  {
    name = "builder: each agent token is the host's agent-token.yaml, the one the builder host may read";
    got = builtins.mapAttrs (_: s: {
      file = "${baseNameOf (dirOf (toString s.sopsFile))}/${baseNameOf (toString s.sopsFile)}";
      inherit (s) key;
    }) (lib.filterAttrs (n: _: lib.hasPrefix "agent-token-" n) stolas.sops.secrets);
    want = lib.genAttrs (map (h: "agent-token-${h}") farm.deployHosts) (n: {
      file = "${lib.removePrefix "agent-token-" n}/agent-token.yaml";
      key = "farm-agent-token";
    });
  }
  {
    name = "builder: the other flags (admin token, workers, timeouts, eval memory in bytes, flake dir, public cache URL)";
    got = {
      exec = (unit tuned "farm-builder").serviceConfig.ExecStart;
      creds = builtins.filter (c: lib.hasPrefix "admin-token:" c) (unit tuned "farm-builder").serviceConfig.LoadCredential;
    };
    want = {
      exec = builtins.concatStringsSep " " (
        map q [
          "${store "homelab-farm-builder"}/bin/builder"
          "serve"
          "--config"
          (store "farm-builder.toml")
          "--listen"
          "127.0.0.1:8080"
          "--state-dir"
          "/var/lib/farm-builder"
          "--cache"
          "file:///var/lib/farm-builder/cache"
          "--signing-key-file"
          "%d/signing-key"
          "--workers"
          "4"
          "--admin-token-file"
          "%d/admin-token"
          "--agent-tokens-dir"
          (store "farm-agent-tokens")
          "--flake-dir"
          "fleet"
          "--max-silent-time"
          "20m"
          "--build-timeout"
          "2h30m"
          "--eval-memory"
          "4294967296"
          "--deploy-signer"
          "unix:/run/farm-signer/socket"
          "--cache-public-url"
          "https://cache.example.org"
        ]
      );
      creds = [ "admin-token:/run/secrets/admin-token" ];
    };
  }
  {
    name = "builder: an agent token name that is not a host name is an assertion";
    got = failedAssertions (host "vassal" {
      services.farm-builder = {
        enable = true;
        agentTokenFiles."../x" = "/run/secrets/x";
      };
    });
    want = [ "services.farm-builder.agentTokenFiles: every name must be a host name (lowercase letters, digits, '-')." ];
  }

  # --- TLS in front of the builder ------------------------------------------------------
  {
    name = "TLS: the example fleet's URL is plain http on the builder's port; nothing pretends to be https";
    got = {
      url = farm.settings.builderUrl;
      caddy = stolas.services.caddy.enable;
      firewall = lib.sort lib.lessThan stolas.networking.firewall.allowedTCPPorts;
    };
    want = {
      url = "http://farm.home.arpa:8080";
      caddy = false;
      firewall = [
        7741
        8080
      ];
    };
  }
  {
    name = "remote build machines: the fleet's buildMachines become the builder host's nix.buildMachines (ssh-ng, the key from sops); none by default";
    got =
      let
        c = e.host (fleetWith {
          buildMachines = [
            {
              hostName = "mac.home.arpa";
              systems = [ "aarch64-darwin" "x86_64-darwin" ];
              sshUser = "nix";
              maxJobs = 4;
              speedFactor = 2;
              supportedFeatures = [ "big-parallel" ];
              publicHostKey = "c3NoLWVkMjU1MTkgQUFBQQ==";
            }
            {
              hostName = "beast.home.arpa";
              protocol = "ssh";
              sshKey = "/root/.ssh/beast";
              systems = [ "x86_64-linux" ];
            }
          ];
        }) "stolas";
        m = c.nix.buildMachines;
        pick = x: { inherit (x) hostName protocol sshUser sshKey systems maxJobs speedFactor supportedFeatures publicHostKey; };
      in
      {
        distributed = c.nix.distributedBuilds;
        machines = map pick m;
        secret = builtins.baseNameOf (toString c.sops.secrets."remote-builder-ssh-key".sopsFile);
        onAgentOnly = (e.host (fleetWith { buildMachines = [ { hostName = "x"; } ]; }) "malphas").nix.buildMachines;
        default = {
          distributed = stolas.nix.distributedBuilds;
          machines = stolas.nix.buildMachines;
          secret = stolas.sops.secrets ? "remote-builder-ssh-key";
        };
      };
    want = {
      distributed = true;
      machines = [
        {
          hostName = "mac.home.arpa";
          protocol = "ssh-ng";
          sshUser = "nix";
          sshKey = "/run/secrets/remote-builder-ssh-key";
          systems = [ "aarch64-darwin" "x86_64-darwin" ];
          maxJobs = 4;
          speedFactor = 2;
          supportedFeatures = [ "big-parallel" ];
          publicHostKey = "c3NoLWVkMjU1MTkgQUFBQQ==";
        }
        {
          hostName = "beast.home.arpa";
          protocol = "ssh";
          sshUser = null;
          sshKey = "/root/.ssh/beast";
          systems = [ "x86_64-linux" ];
          maxJobs = 1;
          speedFactor = 1;
          supportedFeatures = [ "kvm" "big-parallel" ];
          publicHostKey = null;
        }
      ];
      secret = "farm.yaml";
      onAgentOnly = [ ];
      default = {
        distributed = false;
        machines = [ ];
        secret = false;
      };
    };
  }
  {
    name = "TLS: an https builder URL puts Caddy (ACME) in front of the builder, on 80 and 443";
    got =
      let
        c = e.host (fleetWith {
          builderUrl = "https://farm.example.org";
          cacheUrl = "https://farm.example.org/nix-cache";
        }) "stolas";
      in
      {
        caddy = c.services.caddy.enable;
        vhost = c.services.caddy.virtualHosts."farm.example.org".extraConfig;
        firewall = lib.sort lib.lessThan c.networking.firewall.allowedTCPPorts;
        failed = failedAssertions c;
      };
    want = {
      caddy = true;
      vhost = "reverse_proxy 127.0.0.1:8080\n";
      firewall = [
        80
        443
        7741
        8080
      ];
      failed = [ ];
    };
  }
  {
    name = "TLS: an https URL with the TLS front turned off is an evaluation error";
    got = failedAssertions (
      e.eval {
        fleet = fleetWith { builderUrl = "https://farm.example.org"; };
        modules = (fleet.plan "stolas").modules ++ [ { services.farm-builder.tls.enable = false; } ];
      }
    );
    want = [
      "the fleet's builderUrl (https://farm.example.org) is https, but nothing terminates TLS on stolas: keep services.farm-builder.tls.enable, or use an http:// URL in nix/fleet/settings.nix."
    ];
  }

  # --- notifier, agent, fleet-pull ------------------------------------------------------
  {
    name = "notifier: follows the local builder, ntfy and poke tokens from sops, wakes the farm's MACs, pokes its agents";
    got = {
      exec = (unit stolas "farm-notifier").serviceConfig.ExecStart;
      creds = (unit stolas "farm-notifier").serviceConfig.LoadCredential;
      toml = flags.notifierConfig stolas.services.farm-notifier;
      dynamic = (unit stolas "farm-notifier").serviceConfig.DynamicUser;
    };
    want = {
      exec = builtins.concatStringsSep " " (
        map q [
          "${store "homelab-farm-notifier"}/bin/notifier"
          "--builder-url"
          "http://127.0.0.1:8080"
          "--state-dir"
          "/var/lib/farm-notifier"
          "--ntfy-url"
          farm.settings.ntfyUrl
          "--ntfy-topic"
          farm.settings.ntfyTopic
          "--ntfy-token-file"
          "%d/ntfy-token"
          "--config"
          (store "farm-notifier.toml")
          "--poke-token-file"
          "%d/poke-token"
        ]
      );
      creds = [
        "ntfy-token:/run/secrets/ntfy-token"
        "poke-token:/run/secrets/farm-poke-token"
      ];
      toml = {
        public_url = farm.settings.builderUrl;
        wake_on_lan.malphas = "a8:a1:59:3c:10:7e";
        agents = {
          andras = "http://andras.home.arpa:7741";
          malphas = "http://malphas.home.arpa:7741";
          stolas = "http://stolas.home.arpa:7741";
        };
      };
      dynamic = true;
    };
  }
  {
    name = "agent: flags from the host, the farm's cache and deploy keys, its token, pokes, back to sleep after a wake";
    got = (unit malphas "farm-agent").serviceConfig.ExecStart;
    want = builtins.concatStringsSep " " (
      map q [
        "${store "homelab-farm-agent"}/bin/agent"
        "--builder-url"
        farm.settings.builderUrl
        "--host"
        "malphas"
        "--token-file"
        "%d/token"
        "--deploy-public-key-file"
        (store "farm-deploy.pub")
        "--cache-url"
        farm.settings.cacheUrl
        "--cache-public-key"
        farm.settings.cachePublicKey
        "--interval"
        "15m"
        "--keep-generations"
        "5"
        "--switch-mode"
        "switch"
        "--health-check"
        "systemctl is-active display-manager.service"
        "--systemd-health=true"
        "--state-dir"
        "/var/lib/farm-agent"
        "--listen"
        ":7741"
        "--poke-token-file"
        "%d/poke-token"
        "--suspend-after-wake"
      ]
    );
  }
  {
    name = "agent: root, not restarted by a switch, realises with no negative cache, its token from its folder";
    got =
      let
        u = unit malphas "farm-agent";
      in
      {
        dynamic = u.serviceConfig ? DynamicUser;
        inherit (u) restartIfChanged stopIfChanged;
        nixConfig = u.environment.NIX_CONFIG;
        creds = u.serviceConfig.LoadCredential;
        tokenFile = "${baseNameOf (dirOf (toString malphas.sops.secrets.farm-agent-token.sopsFile))}/${baseNameOf (toString malphas.sops.secrets.farm-agent-token.sopsFile)}";
      };
    want = {
      dynamic = false;
      restartIfChanged = false;
      stopIfChanged = false;
      nixConfig = "narinfo-cache-negative-ttl = 0";
      creds = [
        "token:/run/secrets/farm-agent-token"
        "poke-token:/run/secrets/farm-poke-token"
      ];
      tokenFile = "malphas/agent-token.yaml";
    };
  }
  {
    name = "agent: a long-running service and a daily timer that starts that same service";
    got = {
      type = (unit malphas "farm-agent").serviceConfig.Type or "simple";
      timer = malphas.systemd.timers.farm-agent.timerConfig;
      wantedBy = (unit malphas "farm-agent").wantedBy;
    };
    want = {
      type = "simple";
      timer = {
        OnCalendar = "daily";
        Persistent = true;
        RandomizedDelaySec = "30min";
      };
      wantedBy = [ "multi-user.target" ];
    };
  }
  {
    name = "agent: the other flags (timeouts, systemd health off, links, pokes, suspend, log level)";
    got = builtins.filter (a: a != "") (lib.splitString "\" \"" (unit tuned "farm-agent").serviceConfig.ExecStart);
    want = lib.splitString "\" \"" (
      builtins.concatStringsSep " " (
        map q [
          "${store "homelab-farm-agent"}/bin/agent"
          "--builder-url"
          farm.settings.builderUrl
          "--host"
          "vassal"
          "--deploy-public-key-file"
          (store "farm-deploy.pub")
          "--cache-url"
          farm.settings.cacheUrl
          "--cache-public-key"
          farm.settings.cachePublicKey
          "--interval"
          "15m"
          "--keep-generations"
          "5"
          "--switch-mode"
          "switch"
          "--health-timeout"
          "90s"
          "--systemd-health=false"
          "--switch-timeout"
          "15m"
          "--current-system"
          "/run/booted-system"
          "--profile"
          "/nix/var/nix/profiles/test"
          "--state-dir"
          "/var/lib/farm-agent"
          "--listen"
          "127.0.0.1:7000"
          "--poke-token-file"
          "%d/poke-token"
          "--suspend-after-wake"
          "--suspend-command"
          "systemctl hibernate"
          "--log-level"
          "debug"
        ]
      )
    );
  }
  {
    name = "agent: listen without a poke token is an assertion";
    got = failedAssertions (host "vassal" {
      services.farm-agent = {
        enable = true;
        listen = ":7741";
        pokeTokenFile = null;
      };
    });
    want = [ "services.farm-agent.listen needs pokeTokenFile: pokes are accepted only with the notifier's token." ];
  }
  {
    name = "agent: a host the notifier may wake suspends again after such a wake; one it never wakes does not";
    got = [
      malphas.services.farm-agent.suspendAfterWake
      stolas.services.farm-agent.suspendAfterWake
    ];
    want = [
      true
      false
    ];
  }
  {
    name = "fleet-pull: a daily root oneshot, nh os switch --bypass-root-check from the first remote, 5 generations kept";
    got =
      let
        c = fixture "tablet";
        u = unit c "fleet-pull";
        text = u.serviceConfig.ExecStart.text;
      in
      {
        type = u.serviceConfig.Type;
        calendar = c.systemd.timers.fleet-pull.timerConfig.OnCalendar;
        switch = has "nh os switch '--bypass-root-check' --hostname 'tablet'" text;
        keep = has "--delete-generations +5" text;
        remotes = has (lib.concatMapStringsSep " " (r: "'${r}'") farm.gitRemotes) text;
      };
    want = {
      type = "oneshot";
      calendar = "daily";
      switch = true;
      keep = true;
      remotes = true;
    };
  }
  {
    name = "every host trusts the farm's cache";
    got = {
      inherit (malphas.nix.settings) extra-substituters extra-trusted-public-keys;
    };
    want = {
      extra-substituters = [ farm.settings.cacheUrl ];
      extra-trusted-public-keys = [ farm.settings.cachePublicKey ];
    };
  }

  # --- the exported modules work in any flake ----------------------------------------
  {
    name = "nixosModules.{builder,notifier,agent}: usable without this fleet (no hostSpec, no overlay), with this flake's packages";
    got =
      let
        c = foreign [
          exportedModules.builder
          exportedModules.notifier
          exportedModules.agent
          {
            services.farm-builder.enable = true;
            services.farm-notifier.enable = true;
            services.farm-agent = {
              enable = true;
              builderUrl = "http://farm.example.org:8080";
              cacheUrl = "http://farm.example.org:8080/nix-cache";
              cachePublicKey = "farm-1:abc=";
              deployPublicKey = "farm-deploy-1:def=";
            };
          }
        ];
      in
      map (p: lib.head (lib.splitString " " (unit c "farm-${p}").serviceConfig.ExecStart)) [
        "builder"
        "notifier"
        "agent"
      ]
      ++ [ (failedAssertions c) ];
    want = [
      ''"${store "exported-builder"}/bin/builder"''
      ''"${store "exported-notifier"}/bin/notifier"''
      ''"${store "exported-agent"}/bin/agent"''
      [ ]
    ];
  }

  # --- roles and features, as NixOS merges them -------------------------------------
  {
    name = "servers: the hardening sysctls win over nixpkgs' own mkDefault (kernel.kptr_restrict = 1) without mkForce";
    got = map (n: (real n).boot.kernel.sysctl."kernel.kptr_restrict") [
      "stolas"
      "andras"
    ];
    want = [
      2
      2
    ];
  }
  {
    name = "... where lib.mkDefault 2 would meet nixpkgs' lib.mkDefault 1 and fail to evaluate";
    throws = (e.eval {
      inherit fleet;
      modules = [ { boot.kernel.sysctl."kernel.kptr_restrict" = lib.mkDefault 2; } ];
    }).boot.kernel.sysctl."kernel.kptr_restrict";
  }
  {
    name = "roles and features never set a NixOS option at nixpkgs' own mkDefault priority (only hostSpec defaults)";
    got = builtins.filter (
      f:
      builtins.any (l: builtins.isString l && builtins.match " *#.*" l == null && builtins.match ".*mkDefault.*" l != null) (
        builtins.split "\n" (builtins.readFile f)
      )
    ) (map (f: ../features + "/${f}") (builtins.attrNames (builtins.readDir ../features)) ++ map (f: ../roles + "/${f}") (builtins.attrNames (builtins.readDir ../roles)));
    want = [ ];
  }
  {
    name = "malphas inherits the desktop role: Plasma, Steam, the agent, Wake-on-LAN on its NIC";
    got = {
      plasma = malphas.services.desktopManager.plasma6.enable;
      steam = malphas.programs.steam.enable;
      agent = malphas.services.farm-agent.enable;
      pull = malphas.services.fleet-pull.enable;
      wol = malphas.networking.interfaces.enp5s0.wakeOnLan.enable;
      hostName = malphas.networking.hostName;
      platform = malphas.nixpkgs.hostPlatform;
    };
    want = {
      plasma = true;
      steam = true;
      agent = true;
      pull = false;
      wol = true;
      hostName = "malphas";
      platform = "x86_64-linux";
    };
  }
  {
    name = "malphas' overrides.nix beats the roles without mkForce (time zone, remote play, the quirk)";
    got = {
      tz = malphas.time.timeZone;
      remotePlay = malphas.programs.steam.remotePlay.openFirewall;
      amdgpu = malphas.hardware.amdgpu.initrd.enable;
    };
    want = {
      tz = "Europe/Berlin";
      remotePlay = false;
      amdgpu = true;
    };
  }
  {
    name = "a role default and its override, side by side (fixture)";
    got = [
      (fixture "bare").time.timeZone
      (fixture "overriding").time.timeZone
      (fixture "bare").services.openssh.enable
      (fixture "overriding").services.openssh.enable
      (fixture "bare").services.desktopManager.plasma6.enable
      (fixture "overriding").services.desktopManager.plasma6.enable
      (fixture "bare").hostSpec.gaming
      (fixture "overriding").hostSpec.gaming
      (fixture "bare").programs.steam.enable
      (fixture "overriding").programs.steam.enable
    ];
    want = [
      "UTC"
      "Asia/Tokyo"
      true
      false
      true
      false
      true
      false
      true
      false
    ];
  }
  {
    name = "every flag works in every role: a touch desktop gets GNOME, a server with gui and gaming gets Plasma and Steam";
    got =
      let
        touchDesktop = realWith "malphas" { hostSpec.touch = true; };
        guiServer = realWith "stolas" {
          hostSpec = {
            headless = false;
            gui = true;
            gaming = true;
          };
        };
      in
      {
        touch = {
          gnome = touchDesktop.services.desktopManager.gnome.enable;
          plasma = touchDesktop.services.desktopManager.plasma6.enable;
          iio = touchDesktop.hardware.sensor.iio.enable;
        };
        server = {
          plasma = guiServer.services.desktopManager.plasma6.enable;
          steam = guiServer.programs.steam.enable;
          fail2ban = guiServer.services.fail2ban.enable;
        };
        headlessDesktop = (realWith "malphas" { hostSpec = { headless = true; gui = false; gaming = false; }; }).services.fail2ban.enable;
      };
    want = {
      touch = {
        gnome = true;
        plasma = false;
        iio = true;
      };
      server = {
        plasma = true;
        steam = true;
        fail2ban = false;
      };
      headlessDesktop = true;
    };
  }
  {
    name = "a flag where it makes no sense is an evaluation error, from any file of the host";
    got = map failedAssertions [
      (realWith "malphas" { hostSpec.headless = true; })
      (realWith "stolas" { hostSpec.gaming = true; })
      (realWith "andras" { hostSpec = { gui = true; headless = false; gaming = true; }; })
    ];
    want = [
      [ "host malphas: `headless` and `gui` exclude each other: a headless host has no graphical session" ]
      [ "host stolas: `gaming` needs `gui = true`" ]
      [ "host andras: `gaming` (Steam) exists only on x86_64-linux, not on aarch64-linux" ]
    ];
  }
  {
    name = "stolas (server): hardened, runs the farm, aarch64 by binfmt, disk by disko";
    got = {
      fail2ban = stolas.services.fail2ban.enable;
      docs = stolas.documentation.enable;
      builder = stolas.services.farm-builder.enable;
      notifier = stolas.services.farm-notifier.enable;
      disk = stolas.disko.devices.disk.main.device;
    };
    want = {
      fail2ban = true;
      docs = false;
      builder = true;
      notifier = true;
      disk = "/dev/nvme0n1";
    };
  }
  {
    name = "andras (pi, role and user only): the SD image module, extlinux, root on the card's NIXOS_SD, the agent";
    got =
      let
        c = real "andras";
      in
      {
        platform = c.nixpkgs.hostPlatform;
        extlinux = c.boot.loader.generic-extlinux-compatible.enable;
        root = c.fileSystems."/".device;
        image = c.system.build.sdImage.name;
        agent = c.services.farm-agent.enable;
        user = c.users.users.rain.isNormalUser;
      };
    want = {
      platform = "aarch64-linux";
      extlinux = true;
      root = "/dev/disk/by-label/NIXOS_SD";
      image = "nixos-image-sd-card-andras-aarch64-linux.img";
      agent = true;
      user = true;
    };
  }
  {
    name = "a tablet pulls its updates: fleet-pull on, the agent off, GNOME and sensors (fixture)";
    got =
      let
        c = fixture "tablet";
      in
      [
        c.services.fleet-pull.enable
        c.services.farm-agent.enable
        c.services.desktopManager.gnome.enable
        c.hardware.sensor.iio.enable
      ];
    want = [
      true
      false
      true
      true
    ];
  }
  {
    name = "vassago (darwin): nix-darwin user, daily launchd pull as root with --bypass-root-check, 5 generations, the farm's cache";
    got =
      let
        c = real "vassago";
        d = c.launchd.daemons.fleet-pull.serviceConfig;
        script = (builtins.head d.ProgramArguments);
      in
      {
        user = c.system.primaryUser;
        home = c.users.users.rain.home;
        pull = d.StartCalendarInterval;
        keys = c.nix.settings.extra-trusted-public-keys;
        script = builtins.baseNameOf script;
        failed = failedAssertions c;
      };
    want = {
      user = "rain";
      home = "/Users/rain";
      pull = [
        {
          Hour = 4;
          Minute = 30;
        }
      ];
      keys = [ farm.settings.cachePublicKey ];
      script = "00000000000000000000000000000000-fleet-pull";
      failed = [ ];
    };
  }

  # --- a way in -----------------------------------------------------------------------
  {
    name = "login: the admins' SSH keys for the primary user and root; rain's password hash from shared.yaml, before users exist";
    got = {
      keys = malphas.users.users.rain.openssh.authorizedKeys.keys;
      root = malphas.users.users.root.openssh.authorizedKeys.keys;
      password = malphas.users.users.rain.hashedPasswordFile;
      secret = {
        inherit (malphas.sops.secrets.rain-password-hash) neededForUsers;
        file = baseNameOf (toString malphas.sops.secrets.rain-password-hash.sopsFile);
      };
      passwordSsh = malphas.services.openssh.settings.PasswordAuthentication;
    };
    want = {
      keys = farm.settings.adminSshKeys;
      root = farm.settings.adminSshKeys;
      password = "/run/secrets/rain-password-hash";
      secret = {
        neededForUsers = true;
        file = "shared.yaml";
      };
      passwordSsh = false;
    };
  }
  {
    name = "login: a host nobody can log in to (no admin key, no password hash) is an evaluation error, on NixOS and darwin";
    got =
      let
        locked = fleetWith {
          adminSshKeys = [ ];
          passwordHashSecrets = { };
        };
      in
      map (n: failedAssertions (e.host locked n)) [
        "stolas"
        "vassago"
      ];
    want = [
      [ "host stolas: nobody can log in: add an admin SSH key (scripts/init-fleet --admin-ssh-key FILE writes nix/fleet/keys.nix) or a password hash for rain (passwordHashSecrets in nix/fleet/keys.nix)" ]
      [ "host vassago: nobody can log in: add an admin SSH key (scripts/init-fleet --admin-ssh-key FILE writes nix/fleet/keys.nix) or a password hash for rain (passwordHashSecrets in nix/fleet/keys.nix)" ]
    ];
  }
  {
    name = "every host of the example fleet evaluates with no failed assertion";
    got = map (n: failedAssertions (real n)) fleet.names;
    want = map (_: [ ]) fleet.names;
  }
  # --- rollout settings (hostSpec.deploy) ------------------------------------------
  {
    name = "deploy: the role's settings reach hostSpec.deploy; stolas's own wave 0 beats the server role's 1";
    got = {
      stolas = stolas.hostSpec.deploy;
      malphas = malphas.hostSpec.deploy;
    };
    want = {
      stolas = {
        wave = 0;
        window = "always";
        outsideWindow = "boot";
        idleMinutes = 15;
        asleep = "wait";
      };
      malphas = {
        wave = 2;
        window = "when-idle";
        outsideWindow = "boot";
        idleMinutes = 15;
        asleep = "skip";
      };
    };
  }
  {
    name = "deploy: the builder's farm.deploy and each host's evaluated hostSpec.deploy agree";
    got = builtins.mapAttrs (n: _: (real n).hostSpec.deploy) farm.deploy;
    want = farm.deploy;
  }
  {
    name = "deploy: with agentWindows, malphas's agent gets the desktop's window and its own time zone";
    got =
      let
        args = (unit (e.host (fleetWith { agentWindows = true; }) "malphas") "farm-agent").serviceConfig.ExecStart;
      in
      has (builtins.concatStringsSep " " (
        map q [
          "--suspend-after-wake"
          "--window"
          "when-idle"
          "--outside-window"
          "boot"
          "--idle-minutes"
          "15"
          "--time-zone"
          "Europe/Berlin"
        ]
      )) args;
    want = true;
  }
  {
    name = "deploy: without agentWindows (an agent that does not take them yet) no window flag";
    got = has "--window" (unit malphas "farm-agent").serviceConfig.ExecStart;
    want = false;
  }
  {
    name = "deploy: a window set in another file of the host folder reaches the agent's flags";
    got =
      let
        c = e.eval {
          fleet = fleetWith { agentWindows = true; };
          modules = (fleet.plan "stolas").modules ++ [ {
          hostSpec.deploy.window = "22:00-02:00";
          hostSpec.deploy.outsideWindow = "wait";
          services.farm-agent.enable = true;
        } ];
        };
        args = (unit c "farm-agent").serviceConfig.ExecStart;
      in
      {
        window = has (q "--window" + " " + q "22:00-02:00") args;
        outside = has (q "--outside-window" + " " + q "wait") args;
        tz = has (q "--time-zone" + " " + q "UTC") args;
      };
    want = {
      window = true;
      outside = true;
      tz = true;
    };
  }
  {
    name = "deploy: a host's plain agent window beats the hostSpec's";
    got =
      (realWith "malphas" { services.farm-agent.window = "always"; }).services.farm-agent.window;
    want = "always";
  }
  {
    name = "deploy: a bad window or a negative wave set in a host file is an assertion with the rule";
    got = {
      window = failedAssertions (realWith "stolas" { hostSpec.deploy.window = "3:00-5:00"; });
      wave = failedAssertions (realWith "andras" { hostSpec.deploy.wave = -1; });
    };
    want = {
      window = [
        "host stolas: `deploy.window` must be \"always\", \"when-idle\" or a daily window \"HH:MM-HH:MM\" (24-hour clock, e.g. \"03:00-05:00\"), not \"3:00-5:00\""
      ];
      wave = [ "host andras: `deploy.wave` must be 0 or more, not -1" ];
    };
  }
  {
    name = "deploy: the agent module refuses a window that is none";
    throws = (host "vassal" { services.farm-agent.window = "nightly"; }).services.farm-agent.window;
  }
]
