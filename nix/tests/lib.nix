# Unit tests of nix/lib: host discovery, role resolution, the host-name rule, which
# files a host imports, the fleet's data and .sops.yaml, the mapping from module
# options to program flags, and the flake's wiring (with stub inputs). Builtins
# only: runs offline, without nixpkgs.
#
#   nix-instantiate --eval --strict --json nix/tests/run.nix
#
# A case is { name; got; want; } (got must equal want) or { name; throws; } (the
# expression must fail to evaluate; scripts/test-nix checks the messages).
#
# Tests that name hosts run on the example fleet's snapshot (fixtures/fleet);
# the real fleet (nix/hosts) is checked only with rules that hold for any fleet.
let
  fleetLib = import ../lib { };
  inherit (fleetLib) flags spec util;
  fixtures = fleetLib.hosts ./fixtures/hosts;
  bad = fleetLib.hosts ./fixtures/bad-hosts;
  example = import ./fixtures/fleet;
  real = import ../fleet;
  farm = example;
  desktop = fleetLib.roles.desktop.defaults;
  baseName = p: baseNameOf (toString p);
  hostnames = builtins.fromJSON (builtins.readFile ../../testdata/hostnames.json);

  # The flake's outputs function with stub inputs: nixosSystem/darwinSystem return
  # their arguments, so the wiring of every host can be inspected without nixpkgs.
  flake = import ../flake.nix;
  stubFlake = flake.outputs stubs;
  stubs = {
    self = stubFlake;
    nixpkgs.lib.nixosSystem = args: { builtBy = "nixosSystem"; } // args;
    nix-darwin.lib.darwinSystem = args: { builtBy = "darwinSystem"; } // args;
    home-manager.nixosModules.home-manager = "hm-nixos";
    home-manager.darwinModules.home-manager = "hm-darwin";
    sops-nix.nixosModules.sops = "sops-nixos";
    sops-nix.darwinModules.sops = "sops-darwin";
    disko.nixosModules.disko = "disko";
  };
  hostSpecOf =
    modules: builtins.head (builtins.filter (m: builtins.isAttrs m && m ? hostSpec && !(m.hostSpec ? _type)) modules);

  goVersion = builtins.match ".*\ngo ([0-9]+)\\.([0-9]+)[^\n]*\n.*" (builtins.readFile ../../go.mod);
  pullScript = fleetLib.pull.script {
    kind = "darwin";
    remotes = [ "https://example.org/o/r.git" ];
    branch = "main";
    flakeDir = "nix";
    host = "vassago";
    keep = 5;
  };
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
      kind = "nixos";
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
    name = "every role is one file: kind, description, defaults, module";
    got = map (r: builtins.attrNames fleetLib.roles.${r}) spec.roleNames;
    want = map (_: [
      "defaults"
      "description"
      "kind"
      "module"
    ]) spec.roleNames;
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

  # --- the host-name rule (one, shared with Go through testdata/hostnames.json) ------
  {
    name = "the host-name rule accepts every valid name of testdata/hostnames.json";
    got = builtins.filter (h: !(spec.validHostName h)) hostnames.valid;
    want = [ ];
  }
  {
    name = "the host-name rule refuses every invalid name of testdata/hostnames.json";
    # Nix strings cannot hold NUL: "a\u0000b" reads as "a", a valid name.
    got = builtins.filter (h: spec.validHostName h && !(builtins.elem h hostnames.valid)) hostnames.invalid;
    want = [ ];
  }
  {
    name = "flags.nix (credential names) and host-spec.nix (its type's pattern) use the same rule";
    got = [
      (builtins.filter (h: !(flags.validHostName h)) hostnames.valid)
      (builtins.filter (h: flags.validHostName h && !(builtins.elem h hostnames.valid)) hostnames.invalid)
      (builtins.filter (h: builtins.match spec.hostNamePattern h == null) hostnames.valid)
    ];
    want = [
      [ ]
      [ ]
      [ ]
    ];
  }
  {
    name = "spec.resolve refuses a folder name the rule refuses";
    throws = map (
      h:
      spec.resolve h {
        role = "server";
        primaryUser = "x";
      }
    ) [ "a_b" ];
  }

  # --- flags that make no sense in a role are errors; the rest work everywhere ---
  {
    name = "conflicts: headless with gui, gaming without gui or off x86_64, touch without gui, darwin limits";
    got = map spec.conflicts [
      (desktop // { kind = "nixos"; headless = true; })
      (fleetLib.roles.server.defaults // { kind = "nixos"; gaming = true; })
      (fleetLib.roles.pi.defaults // { kind = "nixos"; gui = true; headless = false; gaming = true; })
      (fleetLib.roles.server.defaults // { kind = "nixos"; touch = true; })
      (fleetLib.roles.darwin.defaults // { kind = "darwin"; autoUpgrade = "farm"; })
      (desktop // { kind = "nixos"; touch = true; })
      (fleetLib.roles.server.defaults // { kind = "nixos"; gui = true; headless = false; gaming = true; })
    ];
    want = [
      [ "`headless` and `gui` exclude each other: a headless host has no graphical session" ]
      [ "`gaming` needs `gui = true`" ]
      [ "`gaming` (Steam) exists only on x86_64-linux, not on aarch64-linux" ]
      [ "`touch` needs `gui = true`" ]
      [ "`autoUpgrade = \"farm\"` needs the farm's agent, which is Linux-only: use \"pull\" or \"none\"" ]
      [ ]
      [ ]
    ];
  }
  {
    name = "spec.resolve throws on a conflict";
    throws = spec.resolve "h" {
      role = "desktop";
      primaryUser = "x";
      headless = true;
    };
  }

  # --- the example fleet (fixtures/fleet, a snapshot) --------------------------------
  {
    name = "the example fleet's hosts";
    got = example.names;
    want = [
      "andras"
      "malphas"
      "stolas"
      "vassago"
    ];
  }
  {
    name = "malphas: a desktop for rain, with its quirks and two override files";
    got = {
      inherit ((example.plan "malphas").spec)
        role
        primaryUser
        system
        gaming
        gpu
        ;
      files = map baseName (example.plan "malphas").files;
    };
    want = {
      role = "desktop";
      primaryUser = "rain";
      system = "x86_64-linux";
      gaming = true;
      gpu = "amd";
      files = [
        "hardware.nix"
        "overrides.nix"
      ];
    };
  }
  {
    name = "nixos and darwin hosts are told apart";
    got = [
      (example.namesOfKind "nixos")
      (example.namesOfKind "darwin")
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
    name = "the farm deploys the hosts that follow it (not the Mac), wakes the ones with a MAC";
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
  {
    name = "the farm deploys desktops, servers and Pis; a tablet or a Mac only when its autoUpgrade says \"farm\"";
    got =
      (fleetLib.fleet {
        hostsDir = ./fixtures/hosts;
        secretsDir = ./fixtures/fleet/secrets;
        settings = example.settings;
      }).deployHosts;
    want = [
      "bare"
      "files"
      "overriding"
    ];
  }
  {
    name = "a host's secrets, agent token and age key are in its folder";
    got = {
      secrets = baseName (example.secrets.host "andras");
      token = baseName (example.secrets.agentToken "andras");
      dir = baseName (dirOf (example.secrets.agentToken "andras"));
      age = example.ageKeyOf "andras";
    };
    want = {
      secrets = "secrets.yaml";
      token = "agent-token.yaml";
      dir = "andras";
      age = "age1ccgzdhfzlre3eu8a48m8spmdk7jylads6fj2mcdzf9dvqjquga3s6gazug";
    };
  }
  {
    name = ".sops.yaml: each host reads its own secrets, its agent token with the builder host, the shared ones";
    got = import ../lib/sops.nix {
      admins.alice = "age1admin";
      hosts = {
        web = "age1web";
        nas = "age1nas";
        nokey = null;
      };
      builderHost = "nas";
    };
    want = builtins.concatStringsSep "\n" [
      "# Generated from the fleet by nix/lib/sops.nix (scripts/init-fleet and"
      "# scripts/new-host write it; scripts/test-nix checks it is current): do not edit."
      "keys:"
      "  - &admin_alice age1admin"
      "  - &host_nas age1nas"
      "  - &host_web age1web"
      "creation_rules:"
      "  - path_regex: nix/secrets/farm\\.yaml$"
      "    key_groups:"
      "      - age:"
      "          - *admin_alice"
      "          - *host_nas"
      "  - path_regex: nix/hosts/nas/secrets\\.yaml$"
      "    key_groups:"
      "      - age:"
      "          - *admin_alice"
      "          - *host_nas"
      "  - path_regex: nix/hosts/web/secrets\\.yaml$"
      "    key_groups:"
      "      - age:"
      "          - *admin_alice"
      "          - *host_web"
      "  - path_regex: nix/hosts/nas/agent-token\\.yaml$"
      "    key_groups:"
      "      - age:"
      "          - *admin_alice"
      "          - *host_nas"
      "  - path_regex: nix/hosts/web/agent-token\\.yaml$"
      "    key_groups:"
      "      - age:"
      "          - *admin_alice"
      "          - *host_web"
      "          - *host_nas"
      "  - path_regex: nix/secrets/(shared|poke-token)\\.yaml$"
      "    key_groups:"
      "      - age:"
      "          - *admin_alice"
      "          - *host_nas"
      "          - *host_web"
      ""
    ];
  }

  # --- the real fleet (nix/hosts): rules that hold for any fleet --------------------
  {
    name = "every host of the fleet resolves";
    got = builtins.attrNames (builtins.mapAttrs (_: p: builtins.deepSeq p.spec true) real.plans);
    want = real.names;
  }
  {
    name = "the committed .sops.yaml is the one nix/lib/sops.nix generates from the fleet";
    got = builtins.readFile ../../.sops.yaml;
    want = real.sopsYaml;
  }
  {
    name = "every host of the fleet has its age key, secrets and agent token in its folder";
    got = builtins.filter (
      n:
      real.ageKeyOf n == null
      || !(builtins.pathExists (real.secrets.host n))
      || !(builtins.pathExists (real.secrets.agentToken n))
    ) real.names;
    want = [ ];
  }
  {
    name = "the fleet's builder host is one of its hosts";
    got = builtins.elem real.settings.builderHost real.names;
    want = true;
  }

  # --- the flake's wiring (stub inputs, the real fleet) ----------------------------
  {
    name = "flake: nixosConfigurations and darwinConfigurations come from the folder tree";
    got = [
      (builtins.attrNames stubFlake.nixosConfigurations)
      (builtins.attrNames stubFlake.darwinConfigurations)
    ];
    want = [
      (real.namesOfKind "nixos")
      (real.namesOfKind "darwin")
    ];
  }
  {
    name = "flake: a NixOS host gets home-manager, sops-nix, disko, then the fleet's modules of its plan";
    got =
      let
        n = builtins.head (real.namesOfKind "nixos");
        m = stubFlake.nixosConfigurations.${n};
      in
      {
        inherit (m) builtBy;
        head = builtins.genList (i: builtins.elemAt m.modules i) 3;
        rest =
          builtins.length m.modules == 4 + builtins.length (real.plan n).modules
          && builtins.filter builtins.isPath m.modules == builtins.filter builtins.isPath (real.plan n).modules;
      };
    want = {
      builtBy = "nixosSystem";
      head = [
        "hm-nixos"
        "sops-nixos"
        "disko"
      ];
      rest = true;
    };
  }
  {
    name = "flake: a host's plan: host-spec, features of its kind, role, role defaults, default.nix, its files";
    got =
      let
        p = example.plan "malphas";
      in
      {
        paths = map baseName (builtins.filter builtins.isPath p.modules);
        role = builtins.isFunction (builtins.elemAt p.modules 2);
        spec = (hostSpecOf p.modules).hostSpec;
      };
    want = {
      paths = [
        "host-spec.nix"
        "nixos.nix"
        "hardware.nix"
        "overrides.nix"
      ];
      role = true;
      spec = {
        role = "desktop";
        primaryUser = "rain";
        hostName = "malphas";
        gpu = "amd";
        wakeOnLan = {
          interface = "enp5s0";
          mac = "a8:a1:59:3c:10:7e";
        };
        kind = "nixos";
      };
    };
  }
  {
    name = "flake: a darwin host is built by nix-darwin with the darwin modules and features";
    got =
      let
        m = (stubFlake.lib.mkHostIn example) "vassago";
      in
      [
        m.builtBy
        (builtins.elemAt m.modules 0)
        (builtins.elemAt m.modules 1)
        (baseName (builtins.elemAt m.modules 4))
      ];
    want = [
      "darwinSystem"
      "hm-darwin"
      "sops-darwin"
      "darwin.nix"
    ];
  }
  {
    name = "flake: nix-darwin follows nixpkgs-unstable, NixOS nixos-unstable";
    got = {
      darwin = flake.inputs.nixpkgs-darwin.url;
      follows = flake.inputs.nix-darwin.inputs.nixpkgs.follows;
      nixos = flake.inputs.nixpkgs.url;
    };
    want = {
      darwin = "github:NixOS/nixpkgs/nixpkgs-unstable";
      follows = "nixpkgs-darwin";
      nixos = "github:NixOS/nixpkgs/nixos-unstable";
    };
  }
  {
    name = "flake: a NixOS module for each program, and images.<host> for every Pi";
    got = {
      modules = builtins.attrNames stubFlake.nixosModules;
      images = builtins.attrNames stubFlake.images;
    };
    want = {
      modules = [
        "agent"
        "builder"
        "fleet-pull"
        "notifier"
      ];
      images = builtins.filter (n: (real.plan n).spec.role == "pi") real.names;
    };
  }
  {
    name = "pkgs/farm.nix builds with the Go of go.mod's go line (buildGo<major><minor>Module)";
    got = builtins.attrNames (
      util.filterAttrs (n: _: builtins.match "buildGo.*Module" n != null) (builtins.functionArgs (import ../pkgs/farm.nix))
    );
    want = [ "buildGo${builtins.elemAt goVersion 0}${builtins.elemAt goVersion 1}Module" ];
  }
  {
    name = "fleet-pull on a Mac: nh darwin switch with --bypass-root-check (it runs as root), then keep 5 generations";
    got = map (re: builtins.match re pullScript != null) [
      ".*nh darwin switch '--bypass-root-check' --hostname 'vassago' .*"
      ".*nix-env --profile '/nix/var/nix/profiles/system' --delete-generations \\+5\n.*"
    ];
    want = [
      true
      true
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
        builderUrls = [ "http://127.0.0.1:8080" ];
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
      builderUrls = [ "https://farm.home.arpa" ];
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
    name = "every secret flag of every program is a -file but --agent-tokens-dir, which the builder's module sets";
    got = map (f: f.name) (
      builtins.filter (f: f.secret && !(util.hasSuffix "-file" f.name)) (
        builtins.concatMap (s: s.flags) (builtins.attrValues flags.schemas)
      )
    );
    want = [ "agent-tokens-dir" ];
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
  # --- rollout settings (lib/deploy.nix) -----------------------------------------
  {
    name = "deploy: windows parse; a daily one may cross midnight";
    got = map fleetLib.deploy.parseWindow [
      "always"
      "when-idle"
      "03:00-05:00"
      "22:00-02:00"
      "24:00-01:00"
      "3:00-5:00"
      "03:00"
      "03:00-05:00 "
    ];
    want = [
      { kind = "always"; }
      { kind = "when-idle"; }
      {
        kind = "daily";
        start = "03:00";
        end = "05:00";
      }
      {
        kind = "daily";
        start = "22:00";
        end = "02:00";
      }
      null
      null
      null
      null
    ];
  }
  {
    name = "deploy: the defaults and every role's settings have no problems";
    got = map fleetLib.deploy.problems (
      [ fleetLib.deploy.defaults ]
      ++ map (r: fleetLib.deploy.resolve (r.defaults.deploy or { })) (builtins.attrValues fleetLib.roles)
    );
    want = builtins.genList (_: [ ]) (1 + builtins.length (builtins.attrNames fleetLib.roles));
  }
  {
    name = "deploy: each problem says what is wrong";
    got = map fleetLib.deploy.problems [
      (fleetLib.deploy.defaults // { wave = "0"; })
      (fleetLib.deploy.defaults // { idleMinutes = 0; })
      (fleetLib.deploy.defaults // { outsideWindow = "now"; })
      (fleetLib.deploy.defaults // { asleep = "wake"; })
    ];
    want = [
      [ "`deploy.wave` must be a whole number (0 for a canary), not \"0\"" ]
      [ "`deploy.idleMinutes` must be a whole number of minutes, 1 or more, not 0" ]
      [ "`deploy.outsideWindow` must be \"boot\" (install for the next boot) or \"wait\", not \"now\"" ]
      [ "`deploy.asleep` must be \"wait\" (an asleep host holds its wave) or \"skip\", not \"wake\"" ]
    ];
  }
  {
    name = "deploy: a host's default.nix overrides single settings over its role's";
    got = (fleetLib.spec.resolve "canary" {
      role = "desktop";
      primaryUser = "rain";
      deploy.wave = 0;
      deploy.window = "22:00-02:00";
    }).deploy;
    want = {
      wave = 0;
      window = "22:00-02:00";
      outsideWindow = "boot";
      idleMinutes = 15;
      asleep = "skip";
    };
  }
  {
    name = "deploy: a negative wave, a bad or empty window, an unknown setting do not evaluate";
    throws = map (n: (bad.plan n).spec) [
      "negative-wave"
      "bad-window"
      "empty-window"
      "bad-deploy"
    ];
  }
  {
    name = "deploy: the flake's farm.deploy is every deployed host's settings, without evaluating a system";
    got = stubFlake.farm.deploy == real.deploy && builtins.attrNames real.deploy == real.deployHosts;
    want = true;
  }
  {
    name = "deploy: the example fleet: stolas is the canary, the desktop waits for idle, the Pi follows";
    got = example.deploy;
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
      andras = {
        wave = 2;
        window = "03:00-05:00";
        outsideWindow = "wait";
        idleMinutes = 15;
        asleep = "wait";
      };
    };
  }
  {
    name = "deploy: the real fleet: every deployed host has a wave of 0 or more";
    got = builtins.all (d: d.wave >= 0) (builtins.attrValues real.deploy);
    want = true;
  }
]
