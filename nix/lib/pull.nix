# The fleet-pull script, for hosts the farm does not serve (a Mac, a tablet, a
# laptop away from home): try the fleet's remotes in order, switch to the first
# that answers with nh, then keep the last N system generations. Pure: the text
# is built from builtins, so the tests read exactly what runs.
#
#   script { kind = "nixos" | "darwin"; remotes; branch; flakeDir; host; keep; nhArgs; profile; }
let
  inherit (builtins) concatStringsSep replaceStrings toString;
  # One word quoted for sh: single quotes, with ' closed, escaped and reopened.
  q = s: "'" + replaceStrings [ "'" ] [ "'\\''" ] (toString s) + "'";
in
{
  inherit q;
  script =
    {
      kind,
      remotes,
      branch,
      flakeDir,
      host,
      keep,
      nhArgs ? [ ],
      profile ? "/nix/var/nix/profiles/system",
    }:
    let
      # nh refuses to run as root unless told: the timer (systemd or launchd) runs
      # it as root, so --bypass-root-check is always there.
      nh = if kind == "darwin" then "nh darwin switch" else "nh os switch";
      args = concatStringsSep " " (map q ([ "--bypass-root-check" ] ++ nhArgs));
    in
    ''
      set -uo pipefail
      for url in ${concatStringsSep " " (map q remotes)}; do
        if ! git ls-remote --exit-code --heads "$url" ${q branch} >/dev/null 2>&1; then
          echo "fleet-pull: $url does not answer, trying the next remote" >&2
          continue
        fi
        ref="git+$url?ref=${branch}&dir=${flakeDir}"
        echo "fleet-pull: switching ${host} to $ref" >&2
        ${nh} ${args} --hostname ${q host} "$ref" || exit 1
        nix-env --profile ${q profile} --delete-generations +${toString keep}
        exit 0
      done
      echo "fleet-pull: no remote answered" >&2
      exit 1
    '';
}
