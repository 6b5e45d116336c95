#!/usr/bin/env bash
# nix/tests/new-host.sh: scripts/new-host end to end, in a temporary copy of the
# repository, with the real ssh-keygen, ssh-to-age, age, sops and nix.
#
# The test plays the admin: scripts/init-fleet makes the copy its own (a fresh age
# key; the example's secrets cannot be decrypted by anyone). Then it adds hosts and
# checks: the host's folder holds its spec, keys and secrets; .sops.yaml (generated)
# lets the host read its own files, its agent token with the builder host and the
# shared secrets, and nothing else; the farm knows the host; its configuration
# evaluates; refusals and failures leave the tree as it was.
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
	if "$@" >"$work/out" 2>&1; then ok "$what"; else
		not_ok "$what"
		sed 's/^/    /' "$work/out" | tail -20
	fi
}
refute() { # refute "description" command...: the command must fail
	local what="$1"
	shift
	if "$@" >"$work/out" 2>&1; then
		not_ok "$what"
		sed 's/^/    /' "$work/out" | tail -20
	else ok "$what"; fi
}
nixeval() { nix-instantiate --eval --strict --json -E "$1" 2>&1; }

# --- a copy of the repository, as a git work tree, made the test admin's ---------------
copy="$work/repo"
mkdir -p "$copy"
(cd "$repo" && tar --exclude=./.git --exclude=./bin -cf - .) | tar -xf - -C "$copy"
cd "$copy" || exit 1
git init -q && git add -A && git -c user.email=t@t -c user.name=t commit -qm base
export HOME="$work/home"
mkdir -p "$HOME"
unset SOPS_AGE_KEY_FILE SOPS_AGE_KEY
ssh-keygen -q -t ed25519 -N "" -C admin@test -f "$work/admin_ssh"
age-keygen -o "$work/admin.txt" 2>/dev/null
check "init-fleet makes the copy the test admin's" \
	scripts/init-fleet --admin-ssh-key "$work/admin_ssh.pub" --admin-age-key "$work/admin.txt" --admin tester
git -c user.email=t@t -c user.name=t commit -qm "fleet: the test admin's" >/dev/null
export SOPS_AGE_KEY_FILE="$work/admin.txt"
builder_host="$(nixeval '(import ./nix/fleet/settings.nix).builderHost' | jq -r .)"
sops --set '["wifi-psk"] "correct-horse-battery-staple"' nix/secrets/shared.yaml

# --- add a server -------------------------------------------------------------------
keys="$work/keys"
start=$(date +%s)
check "new-host runs end to end" \
	scripts/new-host vepar --role server --user ops --disk /dev/vda --interface enp1s0 \
	--mac 52:54:00:AB:CD:EF --target root@vepar.test --keys-dir "$keys"
cp "$work/out" "$work/new-host.out"
echo "    (new-host took $(($(date +%s) - start))s)"

check "default.nix: role, user and quirks" \
	grep -q 'role = "server";' nix/hosts/vepar/default.nix
check "default.nix: the disk, the NIC and its MAC (the farm's registry is the host's folder)" \
	bash -c 'grep -q "disk = \"/dev/vda\";" nix/hosts/vepar/default.nix && grep -q "wakeOnLan.mac = \"52:54:00:ab:cd:ef\";" nix/hosts/vepar/default.nix'
check "the fleet discovers the host and resolves its role" \
	test "$(nixeval 'let p = (import ./nix/fleet).plan "vepar"; in [ p.spec.role p.spec.primaryUser p.system p.spec.wakeOnLan.interface ]')" \
	= '["server","ops","x86_64-linux","enp1s0"]'
check "the SSH host key is made outside the repository, private" \
	test "$(stat -c %a "$keys/vepar/extra-files/etc/ssh/ssh_host_ed25519_key")" = 600
check "the host's folder has its SSH and age public keys" \
	test "$(ssh-to-age -i nix/hosts/vepar/ssh_host_ed25519_key.pub)" = "$(cat nix/hosts/vepar/age.pub)"
host_pub="$(cat nix/hosts/vepar/age.pub)"
check ".sops.yaml lists the host's age key" grep -q "&host_vepar $host_pub" .sops.yaml
check ".sops.yaml is the one the fleet generates" \
	test "$(nixeval '(import ./nix/fleet).sopsYaml' | jq -j .)" = "$(cat .sops.yaml)"
ssh-to-age -private-key -i "$keys/vepar/extra-files/etc/ssh/ssh_host_ed25519_key" >"$work/host.txt"
check "the age identity from the SSH private key has that public key" \
	test "$(age-keygen -y "$work/host.txt")" = "$host_pub"

# The host decrypts with the key sops-nix will derive from its SSH host key.
check "the host's key decrypts the re-encrypted shared secret" \
	bash -c "SOPS_AGE_KEY_FILE='$work/host.txt' sops -d --extract '[\"wifi-psk\"]' nix/secrets/shared.yaml | grep -qx correct-horse-battery-staple"
check "the host's key decrypts its own secrets" env SOPS_AGE_KEY_FILE="$work/host.txt" sops -d nix/hosts/vepar/secrets.yaml
check "the host's key decrypts its agent token" \
	bash -c "SOPS_AGE_KEY_FILE='$work/host.txt' sops -d --extract '[\"farm-agent-token\"]' nix/hosts/vepar/agent-token.yaml | grep -qE '^[0-9a-f]{64}\$'"
check "the builder host ($builder_host) is a recipient of the host's agent token" \
	grep -q "recipient: $(cat "nix/hosts/$builder_host/age.pub")" nix/hosts/vepar/agent-token.yaml
check "the host's key decrypts the poke token" env SOPS_AGE_KEY_FILE="$work/host.txt" sops -d nix/secrets/poke-token.yaml
check "the admin still decrypts the shared secret" sops -d nix/secrets/shared.yaml
age-keygen -o "$work/stranger.txt" 2>/dev/null
refute "a key not listed does not decrypt the shared secret" \
	env SOPS_AGE_KEY_FILE="$work/stranger.txt" sops -d nix/secrets/shared.yaml
refute "the new host does not decrypt the farm's own secrets" \
	env SOPS_AGE_KEY_FILE="$work/host.txt" sops -d nix/secrets/farm.yaml
refute "the new host does not decrypt another host's secrets" \
	env SOPS_AGE_KEY_FILE="$work/host.txt" sops -d "nix/hosts/$builder_host/secrets.yaml"
refute "the new host does not decrypt another host's agent token" \
	env SOPS_AGE_KEY_FILE="$work/host.txt" sops -d "nix/hosts/$builder_host/agent-token.yaml"

check "the farm deploys the host and knows its MAC" \
	test "$(nixeval 'let f = import ./nix/fleet; in [ (builtins.elem "vepar" f.deployHosts) f.wakeOnLan.vepar ]')" \
	= '[true,"52:54:00:ab:cd:ef"]'
eval_host='let
  e = import ./nix/tests/eval.nix { lib = import ./nix/tests/nixpkgs-lib/lib; };
  f = import ./nix/fleet;
in'
check "the new host's NixOS configuration: agent on, disko disk, Wake-on-LAN NIC, its secrets file, a login" \
	test "$(nixeval "$eval_host let c = e.host f \"vepar\"; in [ c.services.farm-agent.enable c.disko.devices.disk.main.device
		c.networking.interfaces.enp1s0.wakeOnLan.enable (baseNameOf (toString c.sops.defaultSopsFile))
		(c.users.users.ops.openssh.authorizedKeys.keys == [ \"$(cat "$work/admin_ssh.pub")\" ]) (e.failedAssertions c) ]")" \
	= '[true,"/dev/vda",true,"secrets.yaml",true,[]]'
check "the builder host takes the host's agent token, its notifier pokes the agent and may wake it" \
	test "$(nixeval "$eval_host let c = e.host f \"$builder_host\"; in [ (baseNameOf (dirOf (toString c.sops.secrets.agent-token-vepar.sopsFile)))
		c.services.farm-notifier.agents.vepar c.services.farm-notifier.wakeOnLan.vepar ]")" \
	= '["vepar","http://vepar.home.arpa:7741","52:54:00:ab:cd:ef"]'
check "the new files are staged in git (the flake sees them)" \
	bash -c "git diff --cached --name-only | grep -qx nix/hosts/vepar/default.nix && git diff --cached --name-only | grep -qx nix/hosts/vepar/agent-token.yaml && git diff --cached --name-only | grep -qx .sops.yaml"
check "it prints the nixos-anywhere command with the host key" \
	grep -q -- "nixos-anywhere --extra-files $keys/vepar/extra-files" "$work/new-host.out"
check "the command installs the flake's host" grep -q -- "--flake ./nix#vepar --target-host root@vepar.test" "$work/new-host.out"
check "its closing hint says what to git add and commit" grep -q -- "git add nix/hosts/vepar .sops.yaml" "$work/new-host.out"
git -c user.email=t@t -c user.name=t commit -qm "hosts: add vepar" >/dev/null

# --- refusals leave the tree as it was --------------------------------------------
snapshot() { (git status --porcelain && git diff --cached | sha256sum) 2>/dev/null; }
before="$(snapshot)"
refute "a second new-host for the same name is refused" \
	scripts/new-host vepar --role server --user ops --keys-dir "$keys"
refute "an unknown role is refused" \
	scripts/new-host amon --role laptop --user ops --keys-dir "$keys"
for bad in Amon a_b ../x "x;id" -a; do
	refute "the host name \"$bad\" is refused (the fleet's one rule)" \
		scripts/new-host "$bad" --role server --user ops --keys-dir "$keys"
done
refute "a flag that makes no sense for the role is refused (a Mac deployed by the farm)" \
	scripts/new-host amon --role darwin --user ops --deploy --keys-dir "$keys"
refute "a keys directory inside the repository is refused" \
	scripts/new-host amon --role server --user ops --keys-dir "$copy/keys"
refute "without an admin key nothing happens" \
	env SOPS_AGE_KEY_FILE="$work/stranger.txt" scripts/new-host amon --role server --user ops --keys-dir "$keys"
# A failure half-way (sops updatekeys refused) puts everything back.
mkdir -p "$work/failing"
# shellcheck disable=SC2016 # the script is written literally
printf '#!/bin/sh\n[ "$1" = updatekeys ] && { echo "updatekeys: refused by the test" >&2; exit 1; }\nexec %s "$@"\n' \
	"$(command -v sops)" >"$work/failing/sops"
chmod +x "$work/failing/sops"
# (scripts/lib.sh puts FARM_TOOLS_DIR first in PATH: the failing sops goes there.)
refute "a failure half-way fails" \
	env FARM_TOOLS_DIR="$work/failing" PATH="$work/failing:$PATH" scripts/new-host amon --role server --user ops --keys-dir "$keys"
cp "$work/out" "$work/failing.out"
check "... after changing the tree, which it restored" grep -q "sops updatekeys .* failed" "$work/failing.out"
check "... and said so" grep -q "restoring .sops.yaml" "$work/failing.out"
check "refusals and failures changed nothing" test "$before" = "$(snapshot)"
check "no host folder was left behind" test ! -e nix/hosts/amon

# --- a Mac and a tablet: they pull their updates unless asked ---------------------------
check "a darwin host is added" scripts/new-host gaap --role darwin --user rain --keys-dir "$keys"
cp "$work/out" "$work/gaap.out"
check "the darwin host prints nix-darwin steps" grep -q "nix-darwin -- switch --flake ./nix#gaap" "$work/gaap.out"
check "a tablet the farm deploys because it was asked is added" \
	scripts/new-host orobas --role tablet --user rain --deploy --keys-dir "$keys"
check "its default.nix says so" grep -q 'autoUpgrade = "farm";' nix/hosts/orobas/default.nix
check "the farm does not deploy the Mac, but the tablet that asked (a plain tablet pulls: nix/tests/lib.nix)" \
	test "$(nixeval 'let f = import ./nix/fleet; in map (h: builtins.elem h f.deployHosts) [ "gaap" "orobas" ]')" = '[false,true]'
check "the darwin host resolves as darwin" \
	test "$(nixeval '((import ./nix/fleet).plan "gaap").kind')" = '"darwin"'
ssh-to-age -private-key -i "$keys/gaap/extra-files/etc/ssh/ssh_host_ed25519_key" >"$work/gaap.txt"
check "every new host decrypts the shared secret" \
	bash -c "SOPS_AGE_KEY_FILE='$work/gaap.txt' sops -d nix/secrets/shared.yaml >/dev/null && SOPS_AGE_KEY_FILE='$work/host.txt' sops -d nix/secrets/shared.yaml >/dev/null"

echo "new-host: $passed passed, $failed failed"
[ "$failed" = 0 ]
