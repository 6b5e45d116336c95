# systemd sandboxing shared by the farm's services (pure data). `dynamicUser` is
# for services that need no root: the builder and the notifier. The agent switches
# the system and runs as root; the activation script runs inside its sandbox, so it
# gets `rootService`, which keeps only what cannot break switch-to-configuration
# (no private /tmp, no UTS namespace: activation sets the hostname; no UMask:
# activation creates files under /etc that users must read).
rec {
  rootService = {
    LockPersonality = true;
    RestrictRealtime = true;
    ProtectKernelLogs = true;
    SystemCallArchitectures = "native";
  };

  dynamicUser = rootService // {
    DynamicUser = true;
    UMask = "0077";
    PrivateTmp = true;
    ProtectClock = true;
    ProtectHostname = true;
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
}
