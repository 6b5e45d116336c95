# shellcheck shell=bash
# scripts/lib.sh: shared environment for the project's scripts (sourced, not run).

# Nix 2.8 from Debian, as root, without a build-users group and without any
# substituter: the machines these scripts run on have no internet.
export NIX_CONFIG="${NIX_CONFIG:-experimental-features = nix-command flakes
build-users-group =
substituters =
sandbox = false
extra-platforms = aarch64-linux}"
export FARM_TOOLS_DIR="${FARM_TOOLS_DIR:-/var/lib/homelab-farm/tools}"
export PATH="$FARM_TOOLS_DIR:$PATH"

# fleet_eval EXPR [--argstr NAME VALUE]...: evaluate a Nix expression over the
# fleet (in the repository root) and print its JSON.
fleet_eval() {
	local expr="$1"
	shift
	nix-instantiate --eval --strict --json -E "$expr" "$@" 2>/dev/null
}

# fleet_write_sops_yaml: write .sops.yaml from the fleet (nix/lib/sops.nix).
fleet_write_sops_yaml() {
	local out
	out="$(nix-instantiate --eval --strict --json -E '(import ./nix/fleet).sopsYaml')" || return 1
	jq -j . <<<"$out" >.sops.yaml
}
