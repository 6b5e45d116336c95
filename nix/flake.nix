{
  description = "homelab fleet: every host is a role, a user and its quirks";

  # No flake.lock is committed: `nix flake lock ./nix` creates it on first use
  # (docs/adding-a-host.md), and CI locks afresh before `nix flake check`.
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    nix-darwin = {
      url = "github:nix-darwin/nix-darwin";
      inputs.nixpkgs.follows = "nixpkgs";
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
      fleet = fleetLib.hosts ./hosts;
      overlay = import ./overlays;

      pkgsFor =
        system:
        import nixpkgs {
          inherit system;
          overlays = [ overlay ];
        };

      # What every host gets, before its role and its own files.
      baseModules = [
        ./modules/host-spec.nix
        { nixpkgs.overlays = [ overlay ]; }
      ];

      # mkHost name: the system of nix/hosts/<name>. The role decides the builder
      # (nixosSystem or darwinSystem) and the role module; default.nix gives the
      # hostSpec at normal priority (so it beats the role's mkDefault values);
      # every other .nix file of the folder is imported and overrides the role.
      mkHost =
        name:
        let
          plan = fleet.plan name;
          specialArgs = {
            inherit inputs fleetLib;
          };
          modules =
            baseModules
            ++ [
              plan.roleModule
              { hostSpec = plan.hostValues // { inherit (plan) kind; }; }
            ]
            ++ plan.files;
        in
        if plan.kind == "darwin" then
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

      hostsOf = kind: fleetLib.util.genAttrs (fleet.namesOfKind kind) mkHost;
    in
    {
      lib = fleetLib // {
        inherit mkHost;
        plans = fleet.plans;
      };

      overlays.default = overlay;

      nixosModules = {
        builder = ./modules/builder.nix;
        notifier = ./modules/notifier.nix;
        agent = ./modules/agent.nix;
        fleet-pull = ./modules/auto-upgrade.nix;
        host-spec = ./modules/host-spec.nix;
      };

      nixosConfigurations = hostsOf "nixos";
      darwinConfigurations = hostsOf "darwin";

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
              python3
              nh
              nixos-anywhere
              go
              jq
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
