# A stand-in for the few packages and builders the fleet's modules use: store
# paths with a fixed hash, and builders that keep what they were given so the
# tests can read it (a TOML file keeps its value, a script its text).
lib:
let
  store = name: "/nix/store/00000000000000000000000000000000-${name}";
  file = name: extra: { outPath = store name; name = name; } // extra;
  pkg = name: {
    type = "derivation";
    outPath = store name;
    inherit name;
    pname = name;
    meta.mainProgram = name;
  };
in
{
  inherit store;
  formats.toml = _: {
    type = lib.types.attrsOf lib.types.anything;
    generate = name: value: file name { inherit value; };
  };
  writeText = name: text: file name { inherit text; };
  writeShellScript = name: text: file name { inherit text; };
  linkFarm = name: entries: file name { inherit entries; };
  homelab-farm = {
    builder = pkg "homelab-farm-builder";
    notifier = pkg "homelab-farm-notifier";
    agent = pkg "homelab-farm-agent";
  };
  git = pkg "git";
  openssh = pkg "openssh";
  coreutils = pkg "coreutils";
  htop = pkg "htop";
  vim = pkg "vim";
  nh = pkg "nh";
  noto-fonts = pkg "noto-fonts";
  noto-fonts-color-emoji = pkg "noto-fonts-color-emoji";
  mangohud = pkg "mangohud";
  linuxPackages_zen = pkg "linux-zen-packages";
  stdenv.hostPlatform.system = "x86_64-linux";
}
