#!/bin/sh
# edgeforge-unlock-data: open the encrypted data volume at boot with clevis (tang and/or TPM2), retrying
# with exponential backoff until it works. Run by edgeforge-data-unlock.service; K3s waits for it.
#
# Degraded mode: when the site's tang server does not answer (network down, device carried off-site) the
# device boots, SSH answers, and this program keeps trying: 5 s, 10 s, 20 s ... every 5 minutes, for ever.
# The state is in EF_DATA_STATUS (/run). Nothing is lost: K3s and everything on the volume
# simply wait. An admin can open it by hand with the escrowed recovery passphrase (`edgeforge keys recover ID`).
#
#   edgeforge-unlock-data            open the volume (the service)
#   edgeforge-unlock-data --check    check that automatic unlock works right now, without opening anything
#   --attempts N                     give up after N attempts (exit 1); default: never give up
set -u

# EF_*: the device layout, in the header edgeforge generates above (scripts/device/layout.ts)
EDV_CONF=${EDV_CONF:-$EF_DATA_CONF}
check=0
attempts=0
while [ $# -gt 0 ]; do
  case $1 in
    --check) check=1 ;;
    --attempts) attempts=$2; shift ;;
    *) echo "usage: edgeforge-unlock-data [--check] [--attempts N]" >&2; exit 2 ;;
  esac
  shift
done

[ -f "$EDV_CONF" ] || { echo "edgeforge-unlock-data: $EDV_CONF is missing (written by the first-boot program)" >&2; exit 1; }
EDV_UUID='' EDV_NAME=$EF_DATA_NAME EDV_DEVICE_ID='' EDV_DEV=''
# shellcheck disable=SC1090
. "$EDV_CONF"
dev=${EDV_DEV:-/dev/disk/by-uuid/$EDV_UUID}
status=${EDV_STATUS:-$EF_DATA_STATUS}
first=${EDV_BACKOFF_FIRST:-5}
max=${EDV_BACKOFF_MAX:-300}

say() { echo "edgeforge-unlock-data: $*" >&2; }

# one attempt; --check tries every clevis slot with --test-passphrase (no device-mapper needed)
try_unlock() {
  if [ "$check" = 1 ]; then
    for slot in $(clevis luks list -d "$dev" 2>/dev/null | sed -n 's/^\([0-9][0-9]*\):.*/\1/p'); do
      if clevis luks pass -d "$dev" -s "$slot" 2>/dev/null | cryptsetup open --test-passphrase --key-slot "$slot" --key-file - "$dev" 2>/dev/null; then
        return 0
      fi
    done
    return 1
  fi
  [ -e "/dev/mapper/$EDV_NAME" ] && return 0
  clevis luks unlock -d "$dev" -n "$EDV_NAME"
}

mkdir -p "${status%/*}" 2>/dev/null || true
n=0
delay=$first
since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
while :; do
  n=$((n + 1))
  # the state is visible from the start: an attempt against an unreachable tang can take a while to fail
  if [ "$n" = 1 ] && [ "$check" != 1 ]; then
    printf 'locked since %s; attempt 1 in progress; recover by hand: edgeforge keys recover %s\n' "$since" "$EDV_DEVICE_ID" >"$status" 2>/dev/null || true
  fi
  if try_unlock; then
    rm -f "$status"
    if [ "$check" = 1 ]; then say "ok: automatic unlock of $dev works now (attempt $n)"; else say "unlocked $dev as /dev/mapper/$EDV_NAME (attempt $n)"; fi
    exit 0
  fi
  if [ "$attempts" -gt 0 ] && [ "$n" -ge "$attempts" ]; then
    printf 'locked since %s; attempt %s failed; gave up; recover by hand: edgeforge keys recover %s\n' "$since" "$n" "$EDV_DEVICE_ID" >"$status" 2>/dev/null || true
    say "gave up after $n attempt(s): $dev stays locked"
    exit 1
  fi
  # jitter (0..delay/4) so a site's devices do not all hit tang at once after a power cut
  jitter=$(($(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % (delay / 4 + 1)))
  printf 'locked since %s; attempt %s failed; next in %ss; recover by hand: edgeforge keys recover %s\n' "$since" "$n" "$((delay + jitter))" "$EDV_DEVICE_ID" >"$status" 2>/dev/null || true
  say "attempt $n: cannot unlock $dev (tang server unreachable, or TPM policy changed). Degraded mode: K3s waits; retrying in $((delay + jitter))s"
  sleep $((delay + jitter))
  delay=$((delay * 2))
  [ "$delay" -gt "$max" ] && delay=$max
done
