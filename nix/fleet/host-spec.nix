# The typed hostSpec: the handful of facts every host states (role, primary user,
# system) plus its quirks. Shared by NixOS and nix-darwin hosts. The role modules
# set the role's defaults with lib.mkDefault (from nix/lib/roles.nix); mkHost sets
# the host's own values from nix/hosts/<name>/default.nix at normal priority.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  roles = import ../lib/roles.nix;
  spec = import ../lib/spec.nix { inherit roles; };
  deploy = import ../lib/deploy.nix;
in
{
  # Flags that make no sense together, or on this kind of system, are evaluation
  # errors wherever the host sets them (lib/spec.nix: conflicts).
  config.assertions = map (msg: {
    assertion = false;
    message = "host ${config.hostSpec.hostName}: ${msg}";
  }) (spec.conflicts config.hostSpec);

  options.hostSpec = mkOption {
    description = "What this host is: role, primary user, system and quirks.";
    default = { };
    type = types.submodule {
      # Quirks nobody has named yet are allowed; modules read them with `or`.
      freeformType = types.attrsOf types.anything;
      options = {
        hostName = mkOption {
          type = types.strMatching spec.hostNamePattern;
          description = "The host's name; defaults to its folder under nix/hosts.";
        };
        role = mkOption {
          type = types.enum (builtins.attrNames roles);
          description = "The role the host inherits its defaults from.";
        };
        kind = mkOption {
          type = types.enum [
            "nixos"
            "darwin"
          ];
          internal = true;
          description = "Which system builder the role uses (set by mkHost).";
        };
        primaryUser = mkOption {
          type = types.strMatching spec.userNamePattern;
          description = "The person who uses this machine; gets a user, wheel and home-manager.";
        };
        system = mkOption {
          type = types.enum spec.allSystems;
          description = "The platform the host runs on.";
        };
        gui = mkOption {
          type = types.bool;
          default = false;
          description = "Whether the host has a graphical session.";
        };
        gaming = mkOption {
          type = types.bool;
          default = false;
          description = "Whether Steam, gamemode and 32-bit graphics are installed.";
        };
        headless = mkOption {
          type = types.bool;
          default = false;
          description = "Whether the host is hardened as a server without a screen.";
        };
        touch = mkOption {
          type = types.bool;
          default = false;
          description = "Whether the host has a touch screen and sensors (rotation, light).";
        };
        autoUpgrade = mkOption {
          type = types.enum [
            "farm"
            "pull"
            "none"
          ];
          default = "farm";
          description = ''
            How the host follows the fleet: "farm" runs the farm's agent (signed deploy
            manifests, binaries from the farm's cache) and the farm deploys it; "pull"
            runs a daily timer that pulls the flake from its remotes and switches with
            nh; "none" does nothing.
          '';
        };
        wakeOnLan = {
          enable = mkOption {
            type = types.bool;
            default = false;
            description = "Whether the host's NIC keeps Wake-on-LAN (magic packet) armed.";
          };
          interface = mkOption {
            type = types.nullOr types.str;
            default = null;
            example = "enp5s0";
            description = "The wired interface to arm.";
          };
          mac = mkOption {
            type = types.nullOr (types.strMatching "([0-9a-f]{2}:){5}[0-9a-f]{2}");
            default = null;
            description = "The interface's MAC address: the farm's notifier wakes the host with it before a deploy.";
          };
        };
        # Checked with clear messages by lib/deploy.nix (the assertions above), so
        # the types here stay loose where a message says more than a type name.
        deploy = {
          wave = mkOption {
            type = types.int;
            default = deploy.defaults.wave;
            description = "The host's wave: 0 gets a new commit first (a canary); wave n+1 only after every host of wave n switched and is healthy.";
          };
          window = mkOption {
            type = types.str;
            default = deploy.defaults.window;
            example = "03:00-05:00";
            description = ''When a switch may happen: "always", "when-idle" (no person at the keyboard) or a daily "HH:MM-HH:MM" window in the host's time zone (may cross midnight).'';
          };
          outsideWindow = mkOption {
            type = types.enum deploy.outsideWindowValues;
            default = deploy.defaults.outsideWindow;
            description = ''Outside the window: "boot" installs the new system for the next boot now; "wait" waits for the window.'';
          };
          idleMinutes = mkOption {
            type = types.int;
            default = deploy.defaults.idleMinutes;
            description = ''For "when-idle": how long the graphical session must have been idle.'';
          };
          asleep = mkOption {
            type = types.enum deploy.asleepValues;
            default = deploy.defaults.asleep;
            description = ''A host asleep when its wave is due: "wait" holds the wave for it (until the gate times out); "skip" goes on and updates it when it wakes.'';
          };
        };
        disk = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "/dev/nvme0n1";
          description = "When set, disko partitions this disk (ESP + ext4 root) at install.";
        };
      };
    };
  };
}
