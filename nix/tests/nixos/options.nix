# The NixOS (and sops-nix, disko, home-manager) options the fleet's modules set or
# read, declared with the types upstream gives them, so the tests evaluate the
# fleet's modules with nixpkgs' real lib.evalModules and no nixpkgs checkout. Only
# declarations: no upstream behaviour, except where a test needs a value upstream
# sets itself (nixpkgs-defaults.nix). `nix flake check` (with the network) runs
# the same modules against real NixOS.
{ lib, ... }:
let
  inherit (lib) mkOption types;
  opt = type: default: mkOption { inherit type default; };
  enable = opt types.bool false;
  str = opt types.str "";
  nullStr = opt (types.nullOr types.str) null;
  strs = opt (types.listOf types.str) [ ];
  packages = opt (types.listOf types.package) [ ];
  # A unit's [Section] values: nixos/lib/systemd-unit-options.nix's unitOption
  # (lists concatenate, single values must agree).
  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge =
      loc: defs:
      let
        defs' = lib.filterOverrides defs;
      in
      if lib.any (def: lib.isList def.value) defs' then
        lib.concatMap (def: lib.toList def.value) defs'
      else
        lib.mergeEqualOption loc defs';
  };
  unitSection = opt (types.attrsOf unitOption) { };

  # "a.b.c" = option  ->  { a.b.c = option; }
  declare = decls: lib.foldl' lib.recursiveUpdate { } (lib.mapAttrsToList (p: o: lib.setAttrByPath (lib.splitString "." p) o) decls);

  service = types.submodule {
    options = {
      description = str;
      wantedBy = strs;
      wants = strs;
      requires = strs;
      after = strs;
      path = opt (types.listOf (types.either types.package types.str)) [ ];
      environment = opt (types.attrsOf (types.nullOr (types.oneOf [ types.str types.path types.package ]))) { };
      serviceConfig = unitSection;
      restartIfChanged = opt types.bool true;
      stopIfChanged = opt types.bool true;
    };
  };
  timer = types.submodule {
    options = {
      description = str;
      wantedBy = strs;
      timerConfig = unitSection;
    };
  };
  socket = types.submodule {
    options = {
      description = str;
      wantedBy = strs;
      listenStreams = strs;
      socketConfig = unitSection;
    };
  };
  user = types.submodule (
    { name, ... }:
    {
      options = {
        isNormalUser = enable;
        isSystemUser = enable;
        extraGroups = strs;
        home = opt types.str "/var/empty";
        openssh.authorizedKeys.keys = strs;
        hashedPasswordFile = nullStr;
        group = str;
      };
    }
  );
  sopsSecret = types.submodule (
    { name, ... }:
    {
      options = {
        sopsFile = opt types.path /nonexistent;
        key = opt types.str name;
        neededForUsers = enable;
        path = opt types.str "/run/secrets/${name}";
      };
    }
  );
  iface = types.submodule { options.wakeOnLan.enable = enable; };
  vhost = types.submodule { options.extraConfig = opt types.lines ""; };
in
{
  options = declare {
    "assertions" = opt (types.listOf types.unspecified) [ ];
    "warnings" = opt (types.listOf types.str) [ ];

    "networking.hostName" = opt (types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$") "nixos";
    "networking.networkmanager.enable" = enable;
    "networking.useNetworkd" = enable;
    "networking.firewall.enable" = opt types.bool true;
    "networking.firewall.allowPing" = opt types.bool true;
    "networking.firewall.allowedTCPPorts" = opt (types.listOf types.port) [ ];
    "networking.interfaces" = opt (types.attrsOf iface) { };
    "systemd.network.wait-online.anyInterface" = enable;

    "nixpkgs.hostPlatform" = mkOption { type = types.either types.str types.attrs; };
    "nixpkgs.overlays" = opt (types.listOf types.unspecified) [ ];
    "nixpkgs.config" = opt (types.submodule { freeformType = types.attrsOf types.raw; }) { };
    "system.stateVersion" = opt types.str "26.11";
    "system.build" = opt (types.lazyAttrsOf types.unspecified) { };
    "time.timeZone" = nullStr;
    "i18n.defaultLocale" = opt types.str "en_US.UTF-8";

    "nix.package" = opt types.package "/nix/store/00000000000000000000000000000000-nix";
    "nix.settings" = opt (types.submodule {
      freeformType = types.attrsOf (types.oneOf [ types.bool types.int types.str (types.listOf types.str) ]);
    }) { };
    "nix.distributedBuilds" = enable;
    # nixos/modules/config/nix-remote-build.nix
    "nix.buildMachines" = opt (types.listOf (types.submodule {
      options = {
        hostName = mkOption { type = types.str; };
        protocol = opt (types.enum [ null "ssh" "ssh-ng" ]) "ssh";
        system = nullStr;
        systems = strs;
        sshUser = nullStr;
        sshKey = nullStr;
        publicHostKey = nullStr;
        maxJobs = opt types.int 1;
        speedFactor = opt types.int 1;
        supportedFeatures = opt (types.listOf types.str) [ "kvm" "big-parallel" ];
        mandatoryFeatures = strs;
      };
    })) [ ];
    "systemd.package" = opt types.package "/nix/store/00000000000000000000000000000000-systemd";
    "systemd.services" = opt (types.attrsOf service) { };
    "systemd.timers" = opt (types.attrsOf timer) { };
    "systemd.sockets" = opt (types.attrsOf socket) { };

    "users.users" = opt (types.attrsOf user) { };
    "users.groups" = opt (types.attrsOf (types.submodule { options.gid = opt (types.nullOr types.int) null; })) { };

    "boot.binfmt.emulatedSystems" = strs;
    "boot.loader.systemd-boot.enable" = enable;
    "boot.loader.efi.canTouchEfiVariables" = enable;
    "boot.loader.grub.enable" = opt types.bool true;
    "boot.loader.generic-extlinux-compatible.enable" = enable;
    "boot.initrd.availableKernelModules" = strs;
    "boot.kernelModules" = strs;
    "boot.kernelPackages" = opt types.raw "/nix/store/00000000000000000000000000000000-linux-packages";
    # nixos/modules/config/sysctl.nix: values merge like options of their own type
    # (two different values at one priority are an error).
    "boot.kernel.sysctl" = opt (types.attrsOf (types.nullOr (types.oneOf [ types.bool types.str types.int ]))) { };
    "fileSystems" = opt (types.attrsOf (types.submodule { freeformType = types.attrsOf types.anything; })) { };
    "swapDevices" = opt (types.listOf types.attrs) [ ];
    "zramSwap.enable" = enable;
    "powerManagement.enable" = opt types.bool true;
    "powerManagement.cpuFreqGovernor" = nullStr;

    "hardware.enableRedistributableFirmware" = enable;
    "hardware.graphics.enable" = enable;
    "hardware.graphics.enable32Bit" = enable;
    "hardware.bluetooth.enable" = enable;
    "hardware.sensor.iio.enable" = enable;
    "hardware.steam-hardware.enable" = enable;
    "hardware.amdgpu.initrd.enable" = enable;
    "hardware.cpu.amd.updateMicrocode" = enable;
    "hardware.cpu.intel.updateMicrocode" = enable;

    "services.openssh.enable" = enable;
    "services.openssh.hostKeys" = opt (types.listOf types.attrs) [ ];
    "services.openssh.settings" = opt (types.submodule { freeformType = types.attrsOf (types.nullOr (types.oneOf [ types.bool types.int types.str (types.listOf types.str) ])); }) { };
    "services.fail2ban.enable" = enable;
    "services.journald.settings" = opt (types.attrsOf (types.attrsOf (types.nullOr (types.oneOf [ types.bool types.int types.str ])))) { };
    "services.fwupd.enable" = enable;
    "services.printing.enable" = enable;
    "services.displayManager.sddm.enable" = enable;
    "services.displayManager.sddm.wayland.enable" = enable;
    "services.displayManager.gdm.enable" = enable;
    "services.desktopManager.plasma6.enable" = enable;
    "services.desktopManager.gnome.enable" = enable;
    "services.pulseaudio.enable" = enable;
    "services.pipewire.enable" = enable;
    "services.pipewire.alsa.enable" = enable;
    "services.pipewire.pulse.enable" = enable;
    "services.libinput.enable" = enable;
    "services.libinput.touchpad.disableWhileTyping" = enable;
    "services.power-profiles-daemon.enable" = enable;
    "services.thermald.enable" = enable;
    "services.caddy.enable" = enable;
    "services.caddy.virtualHosts" = opt (types.attrsOf vhost) { };
    "security.rtkit.enable" = enable;
    "security.sudo.execWheelOnly" = enable;
    "security.protectKernelImage" = enable;
    "documentation.enable" = opt types.bool true;
    "fonts.fontconfig.enable" = opt types.bool true;
    "fonts.packages" = packages;
    "xdg.mime.enable" = opt types.bool true;
    "environment.systemPackages" = packages;

    "programs.nh.enable" = enable;
    "programs.nh.package" = opt types.package "/nix/store/00000000000000000000000000000000-nh";
    "programs.nh.clean.enable" = enable;
    "programs.nh.clean.extraArgs" = str;
    "programs.steam.enable" = enable;
    "programs.steam.remotePlay.openFirewall" = enable;
    "programs.gamemode.enable" = enable;
    "programs.firefox.enable" = enable;

    # sops-nix
    "sops.defaultSopsFile" = opt (types.nullOr types.path) null;
    "sops.defaultSopsFormat" = opt types.str "yaml";
    "sops.age.sshKeyPaths" = opt (types.listOf types.path) [ ];
    "sops.secrets" = opt (types.attrsOf sopsSecret) { };
    # disko
    "disko.devices.disk" = opt (types.attrsOf (types.submodule { freeformType = types.attrsOf types.anything; })) { };
    # home-manager
    "home-manager.useGlobalPkgs" = enable;
    "home-manager.useUserPackages" = enable;
    "home-manager.extraSpecialArgs" = opt types.attrs { };
    "home-manager.users" = opt (types.attrsOf types.deferredModule) { };
  };
}
