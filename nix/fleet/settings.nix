# Fleet-wide facts about the farm, read by the modules of every host. Public values
# only: every secret lives in a sops file and reaches a program as a file. The keys
# (admins, cache, deploy) are in keys.nix, which scripts/init-fleet writes.
import ./keys.nix
// {
  # Where hosts reach the builder's API and its binary cache. The builder serves
  # plain HTTP on builderPort; an https:// URL turns on the TLS front on the
  # builder host (services.farm-builder.tls: Caddy with an ACME certificate, so the
  # name must be one a public CA can issue for). The cache's narinfos and the
  # deploy manifests are signed, so plain HTTP on the home network keeps them
  # intact; it does not hide the agents' tokens from the LAN (docs/fleet.md).
  builderUrl = "http://farm.home.arpa:8080";
  cacheUrl = "http://farm.home.arpa:8080/nix-cache";
  builderPort = 8080;

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

  # System generations a host keeps (the agent and fleet-pull).
  keepGenerations = 5;

  # The agents enforce each host's maintenance window (hostSpec.deploy: its role's
  # defaults, docs/fleet.md). false: every host switches as soon as it is offered a
  # new system (for agents that predate the window flags).
  agentWindows = true;

  # Notifications.
  ntfyUrl = "https://ntfy.home.arpa";
  ntfyTopic = "farm";

  # Remote build machines: the builder host's Nix daemon sends builds to them
  # (nix.buildMachines with nix.distributedBuilds; docs/scale-out.md). Each is a
  # set of nix.buildMachines' options, e.g. { hostName = "mac.home.arpa";
  # systems = [ "aarch64-darwin" ]; sshUser = "nix"; maxJobs = 4; publicHostKey =
  # "<base64 of its ssh_host_ed25519_key.pub>"; }; protocol defaults to ssh-ng and
  # every machine logs in with `remote-builder-ssh-key` of nix/secrets/farm.yaml.
  buildMachines = [ ];
}
