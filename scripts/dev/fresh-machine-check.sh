#!/usr/bin/env bash
# Proof that the README's commands work on a fresh machine (docs/testing.md).
#
# Debootstraps Debian 12 (bookworm, this machine's architecture, from the apt mirror this machine uses) into a
# cached folder, copies it, adds this machine's Node.js 20 and npm (Debian 12's own nodejs is 18) and a
# `git clone` of the current branch, then inside the chroot:
#   1. as a user without root or sudo, before any package is installed: `npm test` must stop at once, non-zero,
#      with the single `apt-get install …` line it needs;
#   2. as root, the README's quick start as written: `npm ci && npm start`, then `npm test`.
# Needs root (debootstrap, chroot, mounts). Usage:
#   sudo scripts/dev/fresh-machine-check.sh [--base-only] [--keep]
#     --base-only  only build the cached debootstrap tree
#     --keep       keep the chroot copy afterwards (it is removed otherwise)
# Environment: EDGEFORGE_FRESH_CACHE (default /var/cache/edgeforge-fresh): the debootstrap tree and the .deb
# cache (apt downloads once; what is installed is decided by apt in the chroot as on any machine).
set -euo pipefail

base_only=0 keep=0
for a in "$@"; do
  case $a in
    --base-only) base_only=1 ;;
    --keep) keep=1 ;;
    *) echo "usage: $0 [--base-only] [--keep]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "fresh-machine-check: needs root (debootstrap, chroot, mounts)" >&2; exit 2; }

repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
branch=$(git -C "$repo" rev-parse --abbrev-ref HEAD)
cache=${EDGEFORGE_FRESH_CACHE:-/var/cache/edgeforge-fresh}
arch=$(dpkg --print-architecture)
# the first Debian mirror this machine's apt uses (deb822 .sources or one-line sources.list)
mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}')
[ -n "$mirror" ] || mirror=$(awk '/^deb / && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
base=$cache/bookworm-$arch
mkdir -p "$cache/debs"

step() { printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

if [ ! -e "$base/.edgeforge-complete" ]; then
  step "debootstrap bookworm/$arch from $mirror into $base"
  rm -rf "$base"
  debootstrap --arch="$arch" --variant=minbase --cache-dir="$cache/debs" bookworm "$base" "$mirror"
  touch "$base/.edgeforge-complete"
fi
[ "$base_only" = 1 ] && { echo "base ready: $base"; exit 0; }

root=$(mktemp -d "$cache/run-XXXXXX")
mounts=()
cleanup() {
  local i
  for (( i=${#mounts[@]}-1; i>=0; i-- )); do umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" || true; done
  if [ "$keep" = 1 ]; then echo "kept: $root"; else rm -rf --one-file-system "$root"; fi
}
trap cleanup EXIT
mnt() { mount "$@"; mounts+=("${@: -1}"); }

step "copy the base system to $root"
cp -a "$base/." "$root/"
# the machine's own Node.js 20 and npm, as a user who installed Node from nodejs.org or NodeSource has them
node_bin=$(readlink -f "$(command -v node)")
npm_dir=$(readlink -f "$(dirname "$(readlink -f "$(command -v npm)")")/..")
install -m 0755 "$node_bin" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/lib/node_modules"
cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# what the Debian installer (or a container runtime) writes and debootstrap does not: localhost resolves
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
# the CA bundle this machine's own Node trusts (NODE_EXTRA_CA_CERTS: e.g. a proxy in front of the npm registry)
ca_env=()
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -r "$NODE_EXTRA_CA_CERTS" ]; then
  cp "$NODE_EXTRA_CA_CERTS" "$root/etc/edgeforge-host-ca.crt"
  ca_env=(NODE_EXTRA_CA_CERTS=/etc/edgeforge-host-ca.crt npm_config_cafile=/etc/edgeforge-host-ca.crt)
fi
# packages installed in a chroot must not start their services (there is no init here; they would hold the mounts)
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d" && chmod 0755 "$root/usr/sbin/policy-rc.d"

step "git clone --branch $branch $repo"
git clone -q --branch "$branch" "$repo" "$root/srv/edgeforge"
echo "commit $(git -C "$root/srv/edgeforge" rev-parse --short HEAD)"

mnt -t proc proc "$root/proc"
mnt -t sysfs sysfs "$root/sys"
mnt --bind /dev "$root/dev"
mnt -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
mnt -t tmpfs tmpfs "$root/run"
mnt --bind "$cache/debs" "$root/var/cache/apt/archives"

# Each step runs in its own PID namespace with its own /proc, as PID 1 with container=… in its environment: the
# convention packages check before touching the host kernel (qemu-user-static's postinst would otherwise register
# binfmt handlers on this machine's kernel), and every process a step leaves behind ends with it.
in_chroot() {
  unshare --mount --pid --fork --kill-child --mount-proc="$root/proc" chroot "$root" /usr/bin/env -i container=edgeforge-fresh-check \
    "${ca_env[@]}" HOME="${HOME_IN:-/root}" PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin TERM=dumb LANG=C.UTF-8 "$@"
}

step "as a user without root or sudo, before any package is installed: npm test"
in_chroot useradd -m -s /bin/bash tester
tester_id=$(in_chroot id -u tester)
chown -R "$tester_id:$tester_id" "$root/srv/edgeforge"
set +e
HOME_IN=/home/tester in_chroot su tester -c 'cd /srv/edgeforge && npm test'
rc=$?
set -e
echo "exit status: $rc"
[ "$rc" != 0 ] || { echo "FAIL: npm test as a user without root or sudo went ahead without the packages" >&2; exit 1; }
chown -R 0:0 "$root/srv/edgeforge"

step "as root, the README's quick start: npm ci && npm start"
in_chroot sh -c 'cd /srv/edgeforge && npm ci && npm start'

step "as root: npm test"
in_chroot sh -c 'cd /srv/edgeforge && npm test'
step "done"
