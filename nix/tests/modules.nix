# Unit tests of the farm's NixOS modules, evaluated offline with the stand-in
# module system of mini-modules.nix: options -> ExecStart, secrets -> credentials,
# hardening, timers, and a host's plain value beating the modules' mkDefault.
# Same case format as lib.nix.
let
  mm = import ./mini-modules.nix;
  farm = import ../farm;

  # What NixOS and sops-nix would provide, reduced to what the modules read.
  base = hostName: {
    hostSpec.hostName = hostName;
    networking.hostName = hostName;
    nix.package = "/nix/store/nix";
    systemd.package = "/nix/store/systemd";
    programs.nh.package = "/nix/store/nh";
    sops.secrets = builtins.listToAttrs (
      map
        (n: {
          name = n;
          value.path = "/run/secrets/${n}";
        })
        (
          [
            "webhook-secret"
            "cache-signing-key"
            "deploy-signing-key"
            "github-token"
            "forgejo-token"
            "ntfy-token"
            "farm-agent-token"
            "webhook-secret-github"
            "webhook-secret-codeberg"
            "webhook-secret-home"
            "status-token-github"
            "status-token-codeberg"
            "status-token-home"
            "farm-poke-token"
          ]
          ++ map (h: "agent-token-${h}") farm.deployHosts
        )
    );
  };
  farmModules = [
    ../modules/cache-client.nix
    ../modules/farm-config.nix
    ../modules/builder.nix
    ../modules/notifier.nix
    ../modules/agent.nix
    ../modules/auto-upgrade.nix
  ];
  host = name: extra: mm.eval { modules = farmModules ++ [ (base name) extra ]; };

  stolas = host "stolas" {
    services.farm-builder = {
      enable = true;
      listen = "0.0.0.0:8080";
    };
    services.farm-notifier.enable = true;
  };
  malphas = host "malphas" {
    services.farm-agent = {
      enable = true;
      healthChecks = [ "systemctl is-active display-manager.service" ];
    };
  };
  vassal = host "vassal" {
    services.fleet-pull.enable = true;
    services.farm-builder = {
      enable = true;
      signingKeyFile = "/etc/farm/cache.key";
    };
  };

  # A real host of nix/hosts (or a fixture), put together the way mkHost does:
  # host-spec, the role module, default.nix as hostSpec, then the host's files.
  evalHost =
    hostsDir: name:
    let
      plan = (import ../lib/hosts.nix { inherit hostsDir; }).plan name;
    in
    mm.eval {
      modules = [
        ../modules/host-spec.nix
        plan.roleModule
        { hostSpec = plan.hostValues // { inherit (plan) kind; }; }
      ]
      ++ plan.files;
    };
  real = evalHost ../hosts;
  fixture = evalHost ./fixtures/hosts;

  unit = c: name: c.systemd.services.${name};
  has = needle: haystack: builtins.match ".*${needle}.*" haystack != null;
  q = s: ''"${s}"'';
  flags = import ../lib/flags.nix;
  failedAssertions = c: map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);

  tuned = host "vassal" {
    services.farm-builder = {
      enable = true;
      workers = 4;
      adminTokenFile = "/run/secrets/admin-token";
      builders = [
        "ssh-ng://mac aarch64-darwin"
        "ssh-ng://pi aarch64-linux"
      ];
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
  agentArgs = c: builtins.tail (flags.agent { inherit (c.services.farm-agent) builderUrl; }).args;
in
[
  {
    name = "builder: ExecStart from the options, every secret a credential from sops";
    got = (unit stolas "farm-builder").serviceConfig.ExecStart;
    want = builtins.concatStringsSep " " (
      map q [
        "/nix/store/00000000000000000000000000000000-homelab-farm-builder/bin/builder"
        "serve"
        "--config"
        "/nix/store/00000000000000000000000000000000-farm-builder.toml"
        "--listen"
        "0.0.0.0:8080"
        "--state-dir"
        "/var/lib/farm-builder"
        "--cache"
        "file:///var/lib/farm-builder/cache"
        "--signing-key-file"
        "%d/signing-key"
        "--deploy-key-file"
        "%d/deploy-key"
        "--agent-tokens-dir"
        "/nix/store/00000000000000000000000000000000-farm-agent-tokens"
        "--flake-dir"
        "nix"
        "--cache-public-url"
        farm.settings.cacheUrl
      ]
    );
  }
  {
    name = "builder: key files, every deployed host's agent token, every remote's webhook secret and token are credentials from sops";
    got = (unit stolas "farm-builder").serviceConfig.LoadCredential;
    want = [
      "signing-key:/run/secrets/cache-signing-key"
      "deploy-key:/run/secrets/deploy-signing-key"
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
    name = "builder: a DynamicUser with a state directory and the Nix daemon's socket";
    got = {
      inherit ((unit stolas "farm-builder").serviceConfig)
        DynamicUser
        StateDirectory
        ReadWritePaths
        ProtectSystem
        ;
    };
    want = {
      DynamicUser = true;
      StateDirectory = "farm-builder";
      ReadWritePaths = [ "/nix/var/nix/daemon-socket" ];
      ProtectSystem = "strict";
    };
  }
  {
    name = "builder: the builder host emulates aarch64-linux";
    got = stolas.boot.binfmt.emulatedSystems;
    want = [ "aarch64-linux" ];
  }
  {
    name = "builder: its TOML config names the fleet's remotes and reads their secrets as credentials";
    got = stolas.services.farm-builder.settings;
    want = {
      public_url = farm.settings.builderUrl;
      repository = [
        {
          name = "fleet";
          deploy_branch = "main";
          sync_remotes = false;
          remote = [
            {
              forge = "github";
              url = "https://github.com/homelab-farm/farm";
              secret_files = [ "/run/credentials/farm-builder.service/webhook-secret-github" ];
              token_file = "/run/credentials/farm-builder.service/status-token-github";
            }
            {
              forge = "codeberg";
              url = "https://codeberg.org/homelab-farm/farm";
              secret_files = [ "/run/credentials/farm-builder.service/webhook-secret-codeberg" ];
              token_file = "/run/credentials/farm-builder.service/status-token-codeberg";
            }
            {
              forge = "forgejo";
              url = "https://git.home.arpa/homelab/farm";
              secret_files = [ "/run/credentials/farm-builder.service/webhook-secret-home" ];
              token_file = "/run/credentials/farm-builder.service/status-token-home";
            }
          ];
        }
      ];
    };
  }
  {
    name = "builder: a host's plain signingKeyFile beats the sops default";
    got = builtins.head (unit vassal "farm-builder").serviceConfig.LoadCredential;
    want = "signing-key:/etc/farm/cache.key";
  }
  {
    name = "builder: not enabled, no unit";
    throws = (unit malphas "farm-builder").serviceConfig.ExecStart;
  }
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
          "/nix/store/00000000000000000000000000000000-homelab-farm-notifier/bin/notifier"
          "--config"
          "/nix/store/00000000000000000000000000000000-farm-notifier.toml"
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
        "/nix/store/00000000000000000000000000000000-homelab-farm-agent/bin/agent"
        "--builder-url"
        farm.settings.builderUrl
        "--host"
        "malphas"
        "--token-file"
        "%d/token"
        "--deploy-public-key-file"
        "/nix/store/00000000000000000000000000000000-farm-deploy.pub"
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
    name = "agent: root, not restarted by a switch, realises with no negative cache";
    got =
      let
        u = unit malphas "farm-agent";
      in
      {
        dynamic = u.serviceConfig ? DynamicUser;
        inherit (u) restartIfChanged stopIfChanged;
        nixConfig = u.environment.NIX_CONFIG;
        creds = u.serviceConfig.LoadCredential;
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
    };
  }
  {
    name = "agent: a daily timer";
    got = malphas.systemd.timers.farm-agent.timerConfig;
    want = {
      OnCalendar = "daily";
      Persistent = true;
      RandomizedDelaySec = "30min";
    };
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
    name = "builder: each agent token is the host's sops file, read with the builder host's key";
    got =
      let
        all = stolas.sops.secrets;
        others = builtins.filter (n: builtins.match "agent-token-.*" n == null) (builtins.attrNames all);
      in
      builtins.mapAttrs (_: s: {
        file = "${baseNameOf (dirOf (toString s.sopsFile))}/${baseNameOf (toString s.sopsFile)}";
        inherit (s) key;
      }) (removeAttrs all others);
    want = {
      agent-token-andras = {
        file = "agent-tokens/andras.yaml";
        key = "farm-agent-token";
      };
      agent-token-malphas = {
        file = "agent-tokens/malphas.yaml";
        key = "farm-agent-token";
      };
      agent-token-stolas = {
        file = "agent-tokens/stolas.yaml";
        key = "farm-agent-token";
      };
    };
  }
  {
    name = "builder: the newer flags (admin token, workers, builders, timeouts, eval memory in bytes, flake dir, public cache URL)";
    got = {
      exec = (unit tuned "farm-builder").serviceConfig.ExecStart;
      creds = builtins.filter (c: builtins.match "admin-token:.*" c != null) (unit tuned "farm-builder").serviceConfig.LoadCredential;
    };
    want = {
      exec = builtins.concatStringsSep " " (
        map q [
          "/nix/store/00000000000000000000000000000000-homelab-farm-builder/bin/builder"
          "serve"
          "--config"
          "/nix/store/00000000000000000000000000000000-farm-builder.toml"
          "--listen"
          "127.0.0.1:8080"
          "--state-dir"
          "/var/lib/farm-builder"
          "--cache"
          "file:///var/lib/farm-builder/cache"
          "--workers"
          "4"
          "--signing-key-file"
          "%d/signing-key"
          "--deploy-key-file"
          "%d/deploy-key"
          "--admin-token-file"
          "%d/admin-token"
          "--agent-tokens-dir"
          "/nix/store/00000000000000000000000000000000-farm-agent-tokens"
          "--flake-dir"
          "fleet"
          "--builders"
          "ssh-ng://mac aarch64-darwin ; ssh-ng://pi aarch64-linux"
          "--max-silent-time"
          "20m"
          "--build-timeout"
          "2h30m"
          "--eval-memory"
          "4294967296"
          "--cache-public-url"
          "https://cache.example.org"
        ]
      );
      creds = [ "admin-token:/run/secrets/admin-token" ];
    };
  }
  {
    name = "builder: a host name that cannot be a credential is an assertion";
    got = failedAssertions (host "vassal" {
      services.farm-builder = {
        enable = true;
        agentTokenFiles."../x" = "/run/secrets/x";
      };
    });
    want = [ "services.farm-builder.agentTokenFiles: host names must be letters, digits, '-' or '_'." ];
  }
  {
    name = "notifier: typed config options over settings; a WoL target with an address is a table";
    got = flags.notifierConfig (host "vassal" {
      services.farm-notifier = {
        enable = true;
        settings.extra = 1;
        wakeOnLan.andras = {
          mac = "00:11:22:33:44:55";
          address = "192.168.1.255:9";
        };
        wakeTimeout = "5m";
        notifySuccess = true;
        publicUrl = "https://status.example.org";
      };
    }).services.farm-notifier;
    want = {
      extra = 1;
      public_url = "https://status.example.org";
      notify_success = true;
      wake_timeout = "5m";
      wake_on_lan = {
        andras = {
          mac = "00:11:22:33:44:55";
          address = "192.168.1.255:9";
        };
        malphas = "a8:a1:59:3c:10:7e";
      };
      agents = farm.agents;
    };
  }
  {
    name = "agent: the newer flags (timeouts, systemd health off, links, pokes, suspend, log level)";
    got = (unit tuned "farm-agent").serviceConfig.ExecStart;
    want = builtins.concatStringsSep " " (
      map q [
        "/nix/store/00000000000000000000000000000000-homelab-farm-agent/bin/agent"
        "--builder-url"
        farm.settings.builderUrl
        "--host"
        "vassal"
        "--deploy-public-key-file"
        "/nix/store/00000000000000000000000000000000-farm-deploy.pub"
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
    );
  }
  {
    name = "agent: a long-running service (pokes, resumes), never --once; the daily timer starts that same service";
    got =
      let
        u = unit malphas "farm-agent";
        t = malphas.systemd.timers.farm-agent;
      in
      {
        type = u.serviceConfig.Type or "simple";
        once = builtins.any (a: builtins.match "--once.*" a != null) (
          flags.agent malphas.services.farm-agent
        ).args;
        restart = u.serviceConfig.Restart;
        wantedBy = u.wantedBy;
        timerUnit = t.timerConfig.Unit or "farm-agent.service";
        timerWantedBy = t.wantedBy;
      };
    want = {
      type = "simple";
      once = false;
      restart = "on-failure";
      wantedBy = [ "multi-user.target" ];
      timerUnit = "farm-agent.service";
      timerWantedBy = [ "timers.target" ];
    };
  }
  {
    name = "agent: its token comes from nix/secrets/agent-tokens/<host>.yaml";
    got = baseNameOf (dirOf (toString (real "malphas").sops.secrets.farm-agent-token.sopsFile));
    want = "agent-tokens";
  }
  {
    name = "agent: takes pokes on the fleet's port, opened in the firewall";
    got = malphas.networking.firewall.allowedTCPPorts;
    want = [ 7741 ];
  }
  {
    name = "agent: listen without a poke token, or a firewall without listen, is an assertion";
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
      (real "malphas").services.farm-agent.suspendAfterWake
      (real "stolas").services.farm-agent.suspendAfterWake
    ];
    want = [
      true
      false
    ];
  }
  {
    name = "fleet-pull: a daily oneshot for hosts the farm does not serve";
    got = {
      type = (unit vassal "fleet-pull").serviceConfig.Type;
      calendar = vassal.systemd.timers.fleet-pull.timerConfig.OnCalendar;
      path = (unit vassal "fleet-pull").path;
    };
    want = {
      type = "oneshot";
      calendar = "daily";
      path = [
        "/nix/store/nix"
        "/nix/store/nh"
        "/nix/store/00000000000000000000000000000000-git"
        "/nix/store/00000000000000000000000000000000-coreutils"
      ];
    };
  }
  {
    name = "every host trusts the farm's cache";
    got = malphas.nix.settings;
    want = {
      extra-substituters = [ farm.settings.cacheUrl ];
      extra-trusted-public-keys = [ farm.settings.cachePublicKey ];
    };
  }
  {
    name = "mini-modules: mkDefault loses to a plain value, mkForce beats it";
    got =
      let
        c = mm.eval {
          modules = [
            { a = mm.lib.mkDefault 1; }
            { a = 2; }
            { b = mm.lib.mkForce 3; }
            { b = 4; }
            {
              l = [ 1 ];
            }
            {
              l = mm.lib.mkIf true [ 2 ];
            }
            {
              l = mm.lib.mkIf false [ 3 ];
            }
          ];
        };
      in
      [
        c.a
        c.b
        c.l
      ];
    want = [
      2
      3
      [
        1
        2
      ]
    ];
  }
  # --- roles and hosts, real files -------------------------------------------------
  {
    name = "malphas inherits the desktop role: Plasma, Steam, the agent, Wake-on-LAN on its NIC";
    got =
      let
        c = real "malphas";
      in
      {
        plasma = c.services.desktopManager.plasma6.enable;
        steam = c.programs.steam.enable;
        agent = c.services.farm-agent.enable;
        pull = c.services.fleet-pull.enable;
        wol = c.networking.interfaces.enp5s0.wakeOnLan.enable;
        hostName = c.networking.hostName;
        platform = c.nixpkgs.hostPlatform;
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
    name = "malphas' overrides.nix beats the role's mkDefault (time zone, remote play)";
    got = {
      tz = (real "malphas").time.timeZone;
      remotePlay = (real "malphas").programs.steam.remotePlay.openFirewall;
      amdgpu = (real "malphas").hardware.amdgpu.initrd.enable;
    };
    want = {
      tz = "Europe/Berlin";
      remotePlay = false;
      amdgpu = true;
    };
  }
  {
    name = "malphas' hostSpec: default.nix, the role's defaults, the farm's MAC";
    got = (real "malphas").hostSpec;
    want = {
      role = "desktop";
      primaryUser = "rain";
      hostName = "malphas";
      kind = "nixos";
      system = "x86_64-linux";
      gui = true;
      gaming = true;
      headless = false;
      touch = false;
      autoUpgrade = "farm";
      gpu = "amd";
      wakeOnLan = {
        enable = true;
        interface = "enp5s0";
        mac = "a8:a1:59:3c:10:7e";
      };
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
    ];
    want = [
      "UTC"
      "Asia/Tokyo"
      true
      false
      true
      false
    ];
  }
  {
    name = "gaming = false in default.nix beats the role's default (fixture)";
    got = [
      (fixture "bare").hostSpec.gaming
      (fixture "overriding").hostSpec.gaming
      (fixture "bare").programs.steam.enable
    ];
    want = [
      true
      false
      true
    ];
  }
  {
    name = "... so gaming.nix configures no Steam there (fixture)";
    throws = (fixture "overriding").programs.steam.enable;
  }
  {
    name = "stolas (server): hardened, runs the farm (its agent takes pokes), aarch64 by binfmt, disk by disko";
    got =
      let
        c = real "stolas";
      in
      {
        fail2ban = c.services.fail2ban.enable;
        docs = c.documentation.enable;
        builder = c.services.farm-builder.enable;
        notifier = c.services.farm-notifier.enable;
        binfmt = c.boot.binfmt.emulatedSystems;
        disk = c.disko.devices.disk.main.device;
        firewall = c.networking.firewall.allowedTCPPorts;
      };
    want = {
      fail2ban = true;
      docs = false;
      builder = true;
      notifier = true;
      binfmt = [ "aarch64-linux" ];
      disk = "/dev/nvme0n1";
      firewall = [
        8080
        7741
      ];
    };
  }
  {
    name = "andras (pi, role and user only): aarch64, extlinux, the agent";
    got =
      let
        c = real "andras";
      in
      {
        platform = c.nixpkgs.hostPlatform;
        extlinux = c.boot.loader.generic-extlinux-compatible.enable;
        agent = c.services.farm-agent.enable;
        user = c.users.users.rain.isNormalUser;
      };
    want = {
      platform = "aarch64-linux";
      extlinux = true;
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
    name = "vassago (darwin): nix-darwin user, daily launchd pull, the farm's cache";
    got =
      let
        c = real "vassago";
      in
      {
        user = c.system.primaryUser;
        home = c.users.users.rain.home;
        pull = c.launchd.daemons.fleet-pull.serviceConfig.StartCalendarInterval;
        keys = c.nix.settings.extra-trusted-public-keys;
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
    };
  }
]
