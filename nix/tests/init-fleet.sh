#!/usr/bin/env bash
# nix/tests/init-fleet.sh: a newcomer's first ten minutes, on a fresh copy of the
# repository. Exactly what docs/adding-a-host.md says: scripts/init-fleet (an admin
# with another name than the example's, no prompts: standard input is closed), then
# scripts/new-host for a server and a Raspberry Pi, then the Nix test suite on that
# copy: green, with zero hand edits. Also checks what init-fleet made: the keys in
# nix/fleet/keys.nix, the example admin gone, every secret re-created for the new
# admin, a cache key pair that matches.
#
# Prints "ok - ..." / "not ok - ..." lines; exits non-zero on any failure.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
ok() {
	passed=$((passed + 1))
	echo "ok - $*"
}
not_ok() {
	failed=$((failed + 1))
	echo "not ok - $*"
}
check() { # check "description" command...
	local what="$1"
	shift
	if "$@" </dev/null >"$work/out" 2>&1; then ok "$what"; else
		not_ok "$what"
		sed 's/^/    /' "$work/out" | tail -30
	fi
}
nixeval() { nix-instantiate --eval --strict --json -E "$1" 2>&1; }

copy="$work/fleet"
mkdir -p "$copy"
(cd "$repo" && tar --exclude=./.git --exclude=./bin -cf - .) | tar -xf - -C "$copy"
cd "$copy" || exit 1
git init -q && git add -A && git -c user.email=t@t -c user.name=t commit -qm "a fresh clone"
export HOME="$work/home"
mkdir -p "$HOME"
unset SOPS_AGE_KEY_FILE SOPS_AGE_KEY XDG_CONFIG_HOME
ssh-keygen -q -t ed25519 -N "" -C kim@laptop -f "$work/id_ed25519"
old_admin="$(nixeval 'builtins.attrNames (import ./nix/fleet/keys.nix).adminAgeKeys' | jq -r '.[0]')"

start=$(date +%s)
# --- 1. make it yours -------------------------------------------------------------------
check "scripts/init-fleet --admin-ssh-key runs without prompts" \
	scripts/init-fleet --admin-ssh-key "$work/id_ed25519.pub" --admin kim
check "it made an age key where sops looks for it" test -s "$HOME/.config/sops/age/keys.txt"
admin_pub="$(age-keygen -y "$HOME/.config/sops/age/keys.txt")"
check "nix/fleet/keys.nix: the admin's age key and SSH key" \
	test "$(nixeval 'let k = import ./nix/fleet/keys.nix; in [ k.adminAgeKeys k.adminSshKeys ]')" \
	= "[{\"kim\":\"$admin_pub\"},[\"$(cat "$work/id_ed25519.pub")\"]]"
check ".sops.yaml names kim, and the example admin no more" \
	bash -c "grep -q '&admin_kim $admin_pub' .sops.yaml && ! grep -q 'admin_$old_admin' .sops.yaml"
check "every secret decrypts with the new admin's key" \
	bash -c 'for f in nix/secrets/*.yaml nix/hosts/*/*.yaml; do sops -d "$f" >/dev/null || { echo "$f"; exit 1; }; done'
check "the cache's public key in keys.nix is the public half of the new signing key in farm.yaml" \
	bash -c 'sops -d --extract "[\"cache-signing-key\"]" nix/secrets/farm.yaml | nix key convert-secret-to-public | grep -qx "$(nix-instantiate --eval --json -E "(import ./nix/fleet/keys.nix).cachePublicKey" 2>/dev/null | jq -r .)"'
check "every remote has a fresh webhook secret" \
	bash -c 'for r in $(nix-instantiate --eval --strict --json -E "map (r: r.name) (import ./nix/fleet/settings.nix).remotes" 2>/dev/null | jq -r ".[]"); do sops -d --extract "[\"webhook-secret-$r\"]" nix/secrets/farm.yaml | grep -qE "^[0-9a-f]{64}$" || exit 1; done'
git -c user.email=t@t -c user.name=t commit -qm "fleet: make it mine" >/dev/null

# --- 2. a server and a Pi -----------------------------------------------------------------
check "scripts/new-host a server" scripts/new-host vine --role server --user kim --disk /dev/sda --keys-dir "$work/keys"
check "scripts/new-host a Pi" scripts/new-host bune --role pi --user kim --keys-dir "$work/keys"
cp "$work/out" "$work/pi.out"
check "the Pi's route is the SD image: nix build ./nix#images.bune, then its key onto the card" \
	bash -c "grep -q 'nix build ./nix#images.bune' '$work/pi.out' && grep -q 'mount /dev/disk/by-label/NIXOS_SD' '$work/pi.out' && ! grep -q nixos-anywhere '$work/pi.out'"
git -c user.email=t@t -c user.name=t commit -qm "hosts: add vine and bune" >/dev/null
check "both hosts are the fleet's, the Pi has an image" \
	test "$(nixeval 'let f = import ./nix/fleet; in [ (builtins.elem "vine" f.names) ((f.plan "bune").spec.role) ]')" = '[true,"pi"]'
echo "    (init-fleet and two new hosts took $(($(date +%s) - start))s)"

# --- 3. the test suite, on this fleet -------------------------------------------------------
check "scripts/test-nix on the new fleet: green, zero hand edits" env FLEET_TEST_NESTED=1 scripts/test-nix
grep -E '^(unit|nix)[ :]' "$work/out" | sed 's/^/    /'
check "git status is clean: everything the scripts wrote was committed as they said" \
	test -z "$(git status --porcelain)"

echo "init-fleet: $passed passed, $failed failed"
[ "$failed" = 0 ]
