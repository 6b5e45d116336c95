#!/usr/bin/env bash
# nix/tests/new-host.sh: scripts/new-host end to end, in a temporary copy of the
# repository, with the real ssh-keygen, age, sops and nix.
#
# The test plays the admin: it makes its own admin age key, puts it in the copy's
# .sops.yaml in place of the fleet's admin and encrypts fresh secret files with it
# (the fleet's real admin key is not in the repository). Then it adds a host and
# checks: the files are made, .sops.yaml lists the host, the shared secret was
# re-encrypted so the host's key (derived from its SSH host key) decrypts it, a key
# not listed does not, the farm's own secrets and other hosts' stay closed to it,
# its agent token is readable by it and the builder host, the farm knows the host
# (deploy list, MAC, the builder's token, the notifier's pokes), and the fleet
# library discovers it.
#
# Prints "ok - ..." / "not ok - ..." lines; exits non-zero on any failure.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
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

# --- a copy of the repository, as a git work tree ---------------------------------
copy="$work/repo"
mkdir -p "$copy"
(cd "$repo" && tar --exclude=./.git --exclude=./bin -cf - .) | tar -xf - -C "$copy"
(cd "$copy" && git init -q && git add -A && git -c user.email=t@t -c user.name=t commit -qm base) ||
	not_ok "git work tree for the copy"
export HOME="$work/home"
mkdir -p "$HOME"
unset SOPS_AGE_KEY_FILE SOPS_AGE_KEY

# --- the admin's key and freshly encrypted secrets -------------------------------
age-keygen -o "$work/admin.txt" 2>/dev/null
admin_pub="$(age-keygen -y "$work/admin.txt")"
sed -i "s|^  - &admin_rain .*|  - \&admin_rain $admin_pub|" "$copy/.sops.yaml"
cd "$copy" || exit 1
printf 'wifi-psk: correct-horse-battery-staple\n' >nix/secrets/shared.yaml
printf 'webhook-secret: farm-only\n' >nix/secrets/farm.yaml
printf 'farm-poke-token: p\n' >nix/secrets/poke-token.yaml
for f in nix/secrets/hosts/*.yaml; do printf '{}\n' >"$f"; done
for f in nix/secrets/agent-tokens/*.yaml; do printf 'farm-agent-token: t\n' >"$f"; done
for f in nix/secrets/shared.yaml nix/secrets/poke-token.yaml nix/secrets/farm.yaml nix/secrets/hosts/*.yaml nix/secrets/agent-tokens/*.yaml; do
	sops -e -i "$f" || not_ok "encrypt $f for the test admin"
done
git add -A
git -c user.email=t@t -c user.name=t commit -qm "test admin" >/dev/null
export SOPS_AGE_KEY_FILE="$work/admin.txt"

# --- add a host -----------------------------------------------------------------
keys="$work/keys"
start=$(date +%s)
check "new-host runs end to end" \
	scripts/new-host vepar --role server --user ops --disk /dev/vda --interface enp1s0 \
	--mac 52:54:00:AB:CD:EF --target root@vepar.test --keys-dir "$keys"
cp "$work/out" "$work/new-host.out"
echo "    (new-host took $(($(date +%s) - start))s)"

check "default.nix is scaffolded with role, user and quirks" \
	grep -q 'role = "server";' nix/hosts/vepar/default.nix
check "default.nix names the disk and the NIC" \
	grep -q 'disk = "/dev/vda";' nix/hosts/vepar/default.nix
check "default.nix parses" nix-instantiate --parse nix/hosts/vepar/default.nix
check "the fleet library discovers the host and resolves its role" \
	test "$(nix-instantiate --eval --strict --json --expr \
		'let p = (import ./nix/lib/hosts.nix { hostsDir = ./nix/hosts; }).plan "vepar"; in [ p.spec.role p.spec.primaryUser p.system p.spec.wakeOnLan.interface ]')" \
	= '["server","ops","x86_64-linux","enp1s0"]'
check "the SSH host key is made outside the repository, private" \
	test "$(stat -c %a "$keys/vepar/extra-files/etc/ssh/ssh_host_ed25519_key")" = 600
check "the SSH host key is ed25519" \
	grep -q '^ssh-ed25519 ' "$keys/vepar/extra-files/etc/ssh/ssh_host_ed25519_key.pub"

host_pub="$(grep -oE '&host_vepar age1[0-9a-z]+' .sops.yaml | cut -d' ' -f2)"
check ".sops.yaml lists the host's age key" test -n "$host_pub"
check "the age key is the one derived from the SSH public key" \
	test "$(scripts/new-host ssh-to-age -i "$keys/vepar/extra-files/etc/ssh/ssh_host_ed25519_key.pub")" = "$host_pub"
scripts/new-host ssh-to-age -private-key -i "$keys/vepar/extra-files/etc/ssh/ssh_host_ed25519_key" >"$work/host.txt"
check "the age identity from the SSH private key has that public key" \
	test "$(age-keygen -y "$work/host.txt")" = "$host_pub"
if command -v ssh-to-age >/dev/null 2>&1; then
	check "ssh-to-age agrees" test "$(ssh-to-age -i "$keys/vepar/extra-files/etc/ssh/ssh_host_ed25519_key.pub")" = "$host_pub"
fi
check ".sops.yaml has a rule for the host's own secrets" \
	grep -q 'path_regex: nix/secrets/hosts/vepar\\.yaml\$' .sops.yaml
check ".sops.yaml has a rule for the host's agent token: the host, the builder host, the admins" \
	bash -c "sed -n '/agent-tokens\/vepar/,/path_regex\|# shared/p' .sops.yaml | grep -c -- '- \*\(admin_rain\|host_vepar\|host_stolas\)\$' | grep -qx 3"
check ".sops.yaml adds the host to the shared rule" \
	bash -c "sed -n '/# shared secrets/,\$p' .sops.yaml | grep -q -- '- \*host_vepar'"
check ".sops.yaml keeps the older hosts" grep -q '&host_malphas ' .sops.yaml

# The host decrypts with the key sops-nix will derive from its SSH host key.
check "the host's key decrypts the re-encrypted shared secret" \
	bash -c "SOPS_AGE_KEY_FILE='$work/host.txt' sops -d --extract '[\"wifi-psk\"]' nix/secrets/shared.yaml | grep -qx correct-horse-battery-staple"
check "the host's key decrypts its own secret file" \
	env SOPS_AGE_KEY_FILE="$work/host.txt" sops -d nix/secrets/hosts/vepar.yaml
check "the host's key decrypts its agent token" \
	bash -c "SOPS_AGE_KEY_FILE='$work/host.txt' sops -d --extract '[\"farm-agent-token\"]' nix/secrets/agent-tokens/vepar.yaml | grep -qE '^[0-9a-f]{64}\$'"
check "the builder host (stolas) is a recipient of the host's agent token" \
	grep -q "recipient: $(grep -oE '&host_stolas age1[0-9a-z]+' .sops.yaml | cut -d' ' -f2)" nix/secrets/agent-tokens/vepar.yaml
check "the host's key decrypts the poke token" \
	env SOPS_AGE_KEY_FILE="$work/host.txt" sops -d nix/secrets/poke-token.yaml
check "the admin still decrypts the shared secret" sops -d nix/secrets/shared.yaml
age-keygen -o "$work/stranger.txt" 2>/dev/null
refute "a key not listed does not decrypt the shared secret" \
	env SOPS_AGE_KEY_FILE="$work/stranger.txt" sops -d nix/secrets/shared.yaml
refute "the new host does not decrypt the farm's own secrets" \
	env SOPS_AGE_KEY_FILE="$work/host.txt" sops -d nix/secrets/farm.yaml
refute "the new host does not decrypt another host's secrets" \
	env SOPS_AGE_KEY_FILE="$work/host.txt" sops -d nix/secrets/hosts/malphas.yaml
refute "the new host does not decrypt another host's agent token" \
	env SOPS_AGE_KEY_FILE="$work/host.txt" sops -d nix/secrets/agent-tokens/malphas.yaml

check "the farm deploys the host and knows its MAC" \
	test "$(nix-instantiate --eval --strict --json --expr \
		'let f = import ./nix/farm; in [ (builtins.elem "vepar" f.deployHosts) f.wakeOnLan.vepar ]')" \
	= '[true,"52:54:00:ab:cd:ef"]'
check "the new host evaluates through its role: agent on, disko disk, Wake-on-LAN NIC and MAC" \
	test "$(nix-instantiate --eval --strict --json --expr '
		let
		  mm = import ./nix/tests/mini-modules.nix;
		  plan = (import ./nix/lib/hosts.nix { hostsDir = ./nix/hosts; }).plan "vepar";
		  c = mm.eval { modules = [ ./nix/modules/host-spec.nix plan.roleModule
		    { hostSpec = plan.hostValues // { inherit (plan) kind; }; } ] ++ plan.files; };
		in [ c.services.farm-agent.enable c.disko.devices.disk.main.device
		     c.networking.interfaces.enp1s0.wakeOnLan.enable c.hostSpec.wakeOnLan.mac
		     (baseNameOf (toString c.sops.defaultSopsFile)) ]')" \
	= '[true,"/dev/vda",true,"52:54:00:ab:cd:ef","vepar.yaml"]'
check "the builder takes the host's agent token, the notifier pokes its agent" \
	test "$(nix-instantiate --eval --strict --json --expr '
		let
		  mm = import ./nix/tests/mini-modules.nix;
		  c = mm.eval { modules = [ ./nix/modules/farm-config.nix ./nix/modules/builder.nix
		    ./nix/modules/notifier.nix { hostSpec.hostName = "stolas";
		      services.farm-builder.enable = true; services.farm-notifier.enable = true; } ]; };
		in [ (toString c.sops.secrets.agent-token-vepar.sopsFile) c.services.farm-notifier.agents.vepar ]' |
		sed "s|$PWD/||")" = '["nix/secrets/agent-tokens/vepar.yaml","http://vepar.home.arpa:7741"]'
check "the new files are staged in git (the flake sees them)" \
	bash -c "git diff --cached --name-only | grep -qx nix/hosts/vepar/default.nix && git diff --cached --name-only | grep -qx nix/secrets/hosts/vepar.yaml && git diff --cached --name-only | grep -qx nix/secrets/agent-tokens/vepar.yaml"
check "it prints the nixos-anywhere command with the host key" \
	grep -q -- "nixos-anywhere --extra-files $keys/vepar/extra-files" "$work/new-host.out"
check "the command installs the flake's host" grep -q -- "--flake ./nix#vepar --target-host root@vepar.test" "$work/new-host.out"

# --- refusals leave the tree as it was --------------------------------------------
snapshot() { (git status --porcelain && git diff --cached | sha256sum) 2>/dev/null; }
before="$(snapshot)"
refute "a second new-host for the same name is refused" \
	scripts/new-host vepar --role server --user ops --keys-dir "$keys"
refute "an unknown role is refused" \
	scripts/new-host amon --role laptop --user ops --keys-dir "$keys"
refute "a host name with capitals is refused" \
	scripts/new-host Amon --role server --user ops --keys-dir "$keys"
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
refute "a failure half-way fails" \
	env PATH="$work/failing:$PATH" scripts/new-host amon --role server --user ops --keys-dir "$keys"
cp "$work/out" "$work/failing.out"
check "... after changing the tree, which it restored" grep -q "sops updatekeys .* failed" "$work/failing.out"
check "... and said so" grep -q "restoring .sops.yaml" "$work/failing.out"
check "refusals and failures changed nothing" test "$before" = "$(snapshot)"
check "no host folder was left behind" test ! -e nix/hosts/amon

# --- a second host: a darwin machine without Wake-on-LAN -----------------------------
check "a darwin host is added too" \
	scripts/new-host gaap --role darwin --user rain --no-deploy --keys-dir "$keys"
cp "$work/out" "$work/gaap.out"
check "the darwin host prints nix-darwin steps" grep -q "nix-darwin -- switch --flake ./nix#gaap" "$work/gaap.out"
scripts/new-host ssh-to-age -private-key -i "$keys/gaap/extra-files/etc/ssh/ssh_host_ed25519_key" >"$work/gaap.txt"
check "both new hosts decrypt the shared secret" \
	bash -c "SOPS_AGE_KEY_FILE='$work/gaap.txt' sops -d nix/secrets/shared.yaml >/dev/null && SOPS_AGE_KEY_FILE='$work/host.txt' sops -d nix/secrets/shared.yaml >/dev/null"
check "the darwin host is registered but not deployed" \
	test "$(nix-instantiate --eval --strict --json --expr \
		'let f = import ./nix/farm; in [ (f.hosts ? gaap) (builtins.elem "gaap" f.deployHosts) ]')" = '[true,false]'
check "the darwin host resolves as darwin" \
	test "$(nix-instantiate --eval --strict --json --expr \
		'((import ./nix/lib/hosts.nix { hostsDir = ./nix/hosts; }).plan "gaap").kind')" = '"darwin"'

echo "new-host: $passed passed, $failed failed"
[ "$failed" = 0 ]
