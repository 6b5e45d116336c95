# Fleet-wide facts about the farm, read by the modules of every host. Public values
# only: every secret lives in nix/secrets/*.yaml (sops) and reaches a program as a
# file. Replace the keys with your own (docs/adding-a-host.md, "First time").
{
  # Where hosts reach the builder's API and its binary cache.
  builderUrl = "https://farm.home.arpa";
  cacheUrl = "https://farm.home.arpa/nix-cache";

  # The cache's public key (`nix key convert-secret-to-public`), trusted by every host.
  cachePublicKey = "farm-1:mnUUt/NvASWLmBT3ZZg0Aq7tle/5oHZDkGSkukeJHKA=";

  # The deploy key's public half: an agent applies only manifests it verifies.
  deployPublicKey = "farm-deploy-1:9vz7ljn7FUGvAQxQ4XtaxYszPX7HHdV2w/+42kZoRbo=";

  # The host that runs the builder and the notifier (binfmt for aarch64 there).
  builderHost = "stolas";

  # The fleet's repository on each forge, in the order hosts not served by the farm
  # try them. `forge` is github, forgejo, codeberg or gitea; each remote's webhook
  # secret and status token are `webhook-secret-<name>` and `status-token-<name>`
  # in nix/secrets/farm.yaml. A remote may set `cloneUrl`, where the builder
  # fetches from (default `url`; e.g. "ssh://git@github.com/o/r.git" or a local
  # mirror): the builder's `clone_url`.
  remotes = [
    {
      name = "github";
      forge = "github";
      url = "https://github.com/homelab-farm/farm";
    }
    {
      name = "codeberg";
      forge = "codeberg";
      url = "https://codeberg.org/homelab-farm/farm";
    }
    {
      name = "home";
      forge = "forgejo";
      url = "https://git.home.arpa/homelab/farm";
    }
  ];
  branch = "main";
  flakeDir = "nix";
  # Once a commit of `branch` is evaluated, fast-forward `branch` on every other
  # remote to it (the builder's `sync_remotes`; needs clone URLs that may push).
  syncRemotes = false;

  # Hosts are <name>.<domain>; their agents take the notifier's pokes on this port.
  domain = "home.arpa";
  pokePort = 7741;

  # Notifications.
  ntfyUrl = "https://ntfy.home.arpa";
  ntfyTopic = "farm";

  # SSH public keys of the admins, allowed to log in as the primary user and root.
  adminSshKeys = [ ];
}
