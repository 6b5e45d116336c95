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
        ]
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
      ]
    );
  }
  {
    name = "builder: key files and every remote's webhook secret and token are credentials from sops";
    got = (unit stolas "farm-builder").serviceConfig.LoadCredential;
    want = [
      "signing-key:/run/secrets/cache-signing-key"
      "deploy-key:/run/secrets/deploy-signing-key"
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
    name = "notifier: follows the local builder, ntfy token from sops, wakes the farm's MACs";
    got = {
      exec = (unit stolas "farm-notifier").serviceConfig.ExecStart;
      creds = (unit stolas "farm-notifier").serviceConfig.LoadCredential;
      wol = stolas.services.farm-notifier.settings.wake_on_lan;
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
        ]
      );
      creds = [ "ntfy-token:/run/secrets/ntfy-token" ];
      wol = farm.wakeOnLan;
      dynamic = true;
    };
  }
  {
    name = "agent: flags from the host, the farm's cache and deploy keys, its token";
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
      creds = [ "token:/run/secrets/farm-agent-token" ];
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
    name = "stolas (server): hardened, runs the farm, aarch64 by binfmt, disk by disko";
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
      firewall = [ 8080 ];
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
