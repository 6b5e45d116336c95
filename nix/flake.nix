{
  description = "homelab fleet: every host is a role, a user and its quirks";

  # No flake.lock is committed: `nix flake lock ./nix` creates it on first use
  # (docs/adding-a-host.md), and CI locks afresh before `nix flake check`.
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    # nix-darwin follows nixpkgs-unstable, the branch it is tested against on
    # macOS (nixos-unstable waits for NixOS tests only).
    nixpkgs-darwin.url = "github:NixOS/nixpkgs/nixpkgs-unstable";
    nix-darwin = {
      url = "github:nix-darwin/nix-darwin";
      inputs.nixpkgs.follows = "nixpkgs-darwin";
    };
    home-manager = {
      url = "github:nix-community/home-manager";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    sops-nix = {
      url = "github:Mic92/sops-nix";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    disko = {
      url = "github:nix-community/disko";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    inputs@{
      self,
      nixpkgs,
      nix-darwin,
      home-manager,
      sops-nix,
      disko,
      ...
    }:
    let
      fleetLib = import ./lib { };
      inherit (fleetLib) forAllSystems;
      fleet = import ./fleet;
      overlay = import ./overlays;

      pkgsFor =
        system:
        import nixpkgs {
          inherit system;
          overlays = [ overlay ];
        };

      # mkHost name: the system of nix/hosts/<name>. The role decides the builder
      # (nixosSystem or darwinSystem); the plan (lib/hosts.nix) lists the fleet's
      # modules: the typed hostSpec, the features for its kind (each follows its
      # hostSpec flag), its role's module and defaults, default.nix as hostSpec at
      # normal priority (so it beats the role's defaults), then every other .nix
      # file of its folder.
      mkHostIn =
        fleet: name:
        let
          plan = fleet.plan name;
          darwin = plan.kind == "darwin";
          specialArgs = {
            inherit inputs fleetLib fleet;
          };
          modules = [ { nixpkgs.overlays = [ overlay ]; } ] ++ plan.modules;
        in
        if darwin then
          nix-darwin.lib.darwinSystem {
            inherit specialArgs;
            modules = [
              home-manager.darwinModules.home-manager
              sops-nix.darwinModules.sops
            ]
            ++ modules;
          }
        else
          nixpkgs.lib.nixosSystem {
            inherit specialArgs;
            modules = [
              home-manager.nixosModules.home-manager
              sops-nix.nixosModules.sops
              disko.nixosModules.disko
            ]
            ++ modules;
          };

      mkHost = mkHostIn fleet;
      hostsOf = kind: fleetLib.util.genAttrs (fleet.namesOfKind kind) mkHost;

      # A service module usable from any flake: the module, with this flake's
      # package as the default (no overlay, no hostSpec needed).
      exported =
        file: program:
        { lib, pkgs, ... }:
        {
          imports = [ file ];
          config.services.${program.service}.package =
            lib.mkDefault
              self.packages.${pkgs.stdenv.hostPlatform.system}.${program.name};
        };
    in
    {
      lib = fleetLib // {
        inherit mkHost mkHostIn fleet;
      };

      overlays.default = overlay;

      # What the builder reads about the fleet without evaluating any system:
      #   nix eval --json ./nix#farm.deploy
      #   -> { "<host>": { "wave": 0, "window": "always", "outsideWindow": "boot",
      #                    "idleMinutes": 15, "asleep": "wait" }, ... }
      # for every host the farm deploys (autoUpgrade = "farm"); docs/fleet.md.
      farm.deploy = fleet.deploy;

      nixosModules = {
        builder = exported ./services/builder.nix {
          service = "farm-builder";
          name = "builder";
        };
        notifier = exported ./services/notifier.nix {
          service = "farm-notifier";
          name = "notifier";
        };
        agent = exported ./services/agent.nix {
          service = "farm-agent";
          name = "agent";
        };
        fleet-pull = ./services/fleet-pull.nix;
      };

      nixosConfigurations = hostsOf "nixos";
      darwinConfigurations = hostsOf "darwin";

      # images.<host>: the SD card image of every Pi (the sd-image module of its
      # role), built for aarch64-linux (on the builder host through binfmt/qemu):
      #   nix build ./nix#images.<host>
      images = fleetLib.util.genAttrs (builtins.filter (
        n: (fleet.plan n).spec.role == "pi"
      ) fleet.names) (n: self.nixosConfigurations.${n}.config.system.build.sdImage);

      packages = forAllSystems (
        system:
        let
          pkgs = pkgsFor system;
        in
        {
          inherit (pkgs.homelab-farm) builder notifier agent;
          default = pkgs.homelab-farm.builder;
        }
      );

      devShells = forAllSystems (
        system:
        let
          pkgs = pkgsFor system;
        in
        {
          default = pkgs.mkShell {
            packages = with pkgs; [
              age
              sops
              ssh-to-age
              openssh
              nh
              nixos-anywhere
              go
              jq
              zstd
            ];
          };
        }
      );

      formatter = forAllSystems (system: (pkgsFor system).nixfmt);

      checks = forAllSystems (
        system:
        import ./tests/flake-checks.nix {
          inherit self system;
          pkgs = pkgsFor system;
        }
      );
    };
}
