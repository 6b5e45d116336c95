# systemd sandboxing shared by the farm's services (pure data). `dynamicUser` is
# for services that need no root: the builder and the notifier. The agent switches
# the system and runs as root; it gets `rootService`, which keeps only what cannot
# break switch-to-configuration.
rec {
  common = {
    LockPersonality = true;
    RestrictRealtime = true;
    PrivateTmp = true;
    ProtectClock = true;
    ProtectHostname = true;
    ProtectKernelLogs = true;
    SystemCallArchitectures = "native";
    UMask = "0077";
  };

  dynamicUser = common // {
    DynamicUser = true;
    NoNewPrivileges = true;
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateDevices = true;
    PrivateUsers = false; # the Nix daemon must see the real uid
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectControlGroups = true;
    ProtectProc = "invisible";
    RestrictNamespaces = true;
    RestrictSUIDSGID = true;
    RemoveIPC = true;
    MemoryDenyWriteExecute = true;
    CapabilityBoundingSet = "";
    AmbientCapabilities = "";
    RestrictAddressFamilies = [
      "AF_UNIX"
      "AF_INET"
      "AF_INET6"
    ];
    SystemCallFilter = [
      "@system-service"
      "~@privileged"
    ];
    SystemCallErrorNumber = "EPERM";
  };

  rootService = common;
}
