# shellcheck shell=sh
# edgeforge-os-update: install this device's ring's OS release into the slot that is not running, inside the
# site's maintenance window (docs/os-updates.md). After os-lib.sh and os-carry.sh.
#   run [--now] [--no-reboot]  what edgeforge-os-update.timer starts: only inside the window (--now: whenever)
#   status                     the slots, their releases, a trial in progress, the last rollback
#   state                      the state record itself (KEY='value' lines)
#   retry                      try again a release that came back too often (after fixing why)
# The ring pointer (EFO_SOURCE/<ring>.ring, or the inbox) must verify against the keyring and be no older than
# the last one accepted; the bundle must hash as the pointer says; RAUC verifies its signature again and
# writes the other slot; what makes this device itself is carried over; then the slot is marked active and
# the device reboots into it for one try. Re-runnable: each stage is recorded on the shared partition (os-state.sh).

# a release that came back this many times in a row waits for `retry` (a person)
OS_HOLD_AFTER=2

os_in_window() {
  iw_now=${EDGEFORGE_OS_NOW:-$(date +%s)}
  iw_day=$(LC_ALL=C TZ="$EFO_WINDOW_TZ" date -d "@$iw_now" +%a | tr '[:upper:]' '[:lower:]')
  iw_hm=$(TZ="$EFO_WINDOW_TZ" date -d "@$iw_now" +%H%M)
  iw_s=$(printf '%s' "$EFO_WINDOW_START" | tr -d :)
  iw_e=$(printf '%s' "$EFO_WINDOW_END" | tr -d :)
  case " $EFO_WINDOW_DAYS " in *" $iw_day "*) ;; *) return 1 ;; esac
  # a window that wraps past midnight counts its early hours to the day it opened on (as the upgrade controller does)
  if [ "$iw_s" -lt "$iw_e" ]; then
    [ "$iw_hm" -ge "$iw_s" ] && [ "$iw_hm" -lt "$iw_e" ]
  else
    [ "$iw_hm" -ge "$iw_s" ] || [ "$iw_hm" -lt "$iw_e" ]
  fi
}

# ptr_get KEY: a value of the accepted ring pointer
ptr_get() {
  sed -n "s/^$1=//p" "$OS_WORK/ring" | head -n 1
}

# the ring pointer from the source, else from the inbox; verified, then kept as $OS_WORK/ring
os_fetch_pointer() {
  mkdir -p "$OS_WORK" || die "cannot create $OS_WORK"
  fp_name="$EFO_RING.ring"
  fp_from=
  rm -f "$OS_WORK/ring.new" "$OS_WORK/ring.cms.new"
  if [ -n "$EFO_SOURCE" ]; then
    if sys curl -sfL --retry 3 --connect-timeout 20 -o "$OS_WORK/ring.new" "${EFO_SOURCE%/}/$fp_name" &&
      sys curl -sfL --retry 3 --connect-timeout 20 -o "$OS_WORK/ring.cms.new" "${EFO_SOURCE%/}/$fp_name.cms"; then
      fp_from=${EFO_SOURCE%/}/$fp_name
    else
      rm -f "$OS_WORK/ring.new" "$OS_WORK/ring.cms.new"
      log "cannot fetch ${EFO_SOURCE%/}/$fp_name (offline?); looking in the inbox $EF_OS_INBOX"
    fi
  fi
  if [ -z "$fp_from" ] && [ -f "$R$EF_OS_INBOX/$fp_name" ] && [ -f "$R$EF_OS_INBOX/$fp_name.cms" ]; then
    cp "$R$EF_OS_INBOX/$fp_name" "$OS_WORK/ring.new" || die "cannot read the inbox"
    cp "$R$EF_OS_INBOX/$fp_name.cms" "$OS_WORK/ring.cms.new" || die "cannot read the inbox"
    fp_from="$EF_OS_INBOX/$fp_name"
  fi
  [ -n "$fp_from" ] || die "no $EFO_RING ring pointer: ${EFO_SOURCE:+$EFO_SOURCE unreachable and }nothing in the inbox $EF_OS_INBOX; nothing to install (tried again in the next window)"
  if ! openssl cms -verify -binary -inform DER -in "$OS_WORK/ring.cms.new" -content "$OS_WORK/ring.new" -CAfile "$R$EF_OS_KEYRING" -purpose any -out /dev/null 2>"$OS_WORK/verify.err"; then
    die "the $EFO_RING ring pointer from $fp_from does not verify against $EF_OS_KEYRING ($(tail -n 1 "$OS_WORK/verify.err")): not signed by this fleet's OS-update key; ignored"
  fi
  for fp_k in "format=edgeforge-os-ring/1" "fleet=$EFO_FLEET" "ring=$EFO_RING"; do
    grep -qx "$fp_k" "$OS_WORK/ring.new" || die "the ring pointer from $fp_from is not this device's ($fp_k expected); ignored"
  done
  fp_issued=$(sed -n 's/^issued=//p' "$OS_WORK/ring.new")
  fp_last=$(cat "$OS_WORK/issued" 2>/dev/null || echo 0)
  case $fp_issued in '' | *[!0-9]*) die "the ring pointer from $fp_from has no issued time; ignored" ;; esac
  # an older pointer, replayed, must not take the device back to a release the fleet left
  [ "$fp_issued" -ge "$fp_last" ] || die "the ring pointer from $fp_from was issued at $fp_issued, before the one this device already follows ($fp_last): ignored"
  mv -f "$OS_WORK/ring.cms.new" "$OS_WORK/ring.cms" || die "cannot keep the ring pointer"
  mv -f "$OS_WORK/ring.new" "$OS_WORK/ring" || die "cannot keep the ring pointer"
  printf '%s\n' "$fp_issued" >"$OS_WORK/issued"
  log "ring $EFO_RING: release $(ptr_get version) (pointer issued $fp_issued, from $fp_from)"
}

# os_fetch_bundle FILE SHA256 BYTES: the bundle on the data volume (the inbox's copy when there is one); prints its path
os_fetch_bundle() {
  fb_name=${1##*/}
  if [ -f "$R$EF_OS_INBOX/$fb_name" ]; then
    [ "$(sha_of "$R$EF_OS_INBOX/$fb_name")" = "$2" ] || die "$EF_OS_INBOX/$fb_name does not have the sha256 its ring pointer gives ($2); remove it"
    echo "$R$EF_OS_INBOX/$fb_name"
    return 0
  fi
  [ -n "$EFO_SOURCE" ] || die "the bundle $fb_name is not in the inbox $EF_OS_INBOX and this device has no source to download it from"
  fb_dir="$R$EF_OS_DOWNLOAD"
  if [ -z "$R" ] && [ -f "$EF_DATA_CONF" ] && ! mountpoint -q "$EF_DATA_MOUNT"; then die "the data volume is not open (mounted on $EF_DATA_MOUNT): nowhere to download the bundle"; fi
  mkdir -p "$fb_dir" || die "cannot create $fb_dir"
  # older downloads go: one bundle at a time
  for fb_old in "$fb_dir"/*; do
    case $fb_old in "$fb_dir/$fb_name" | "$fb_dir/$fb_name.part") ;; *) rm -f "$fb_old" ;; esac
  done
  if [ ! -f "$fb_dir/$fb_name" ]; then
    fb_have=$(stat -c %s "$fb_dir/$fb_name.part" 2>/dev/null || echo 0)
    # in KiB (awk prints a byte count of GBs as a float), with 64 MiB to spare
    fb_free=$(df -Pk "$fb_dir" | awk 'NR == 2 { print $4 }')
    [ "$fb_free" -gt $((($3 - fb_have) / 1024 + 65536)) ] || die "not enough room for the bundle on the data volume ($fb_free KiB free, $(($3 / 1024)) KiB needed)"
    log "downloading $fb_name ($3 bytes; resumes where an earlier window stopped)"
    sys curl -sfL --retry 5 --connect-timeout 20 -C - -o "$fb_dir/$fb_name.part" "${EFO_SOURCE%/}/$1" || die "the download of $fb_name stopped (network?); it resumes in the next window"
    if [ "$(sha_of "$fb_dir/$fb_name.part")" != "$2" ]; then
      rm -f "$fb_dir/$fb_name.part"
      die "$fb_name does not have the sha256 its ring pointer gives ($2): discarded, downloaded again in the next window"
    fi
    mv -f "$fb_dir/$fb_name.part" "$fb_dir/$fb_name" || die "cannot keep $fb_name"
  fi
  echo "$fb_dir/$fb_name"
}

# the mount points of a carry-over: in RAM (EF_RUN_DIR), so the running root's own copy never holds them
OS_MNT="$R$EF_RUN_DIR/os-update"

# os_mount_slots OTHER: the running root (without what is mounted on it) and the freshly written slot, for os_carry
os_mount_slots() {
  OS_OLD="$OS_MNT/old" OS_NEW="$OS_MNT/new"
  mkdir -p "$OS_OLD" "$OS_NEW" || die "cannot create the mount points under $OS_MNT"
  if [ -n "$R" ]; then OS_OLD=$R; return 0; fi
  # a run killed while they were mounted left them mounted
  for ms_m in "$OS_MNT/boot-new" "$OS_MNT/boot-old" "$OS_NEW" "$OS_OLD"; do if mountpoint -q "$ms_m"; then sys umount "$ms_m" || die "cannot unmount $ms_m"; fi; done
  sys mount --bind / "$OS_OLD" || die "cannot bind-mount / on $OS_OLD"
  ms_dev=$(os_ab ROOT "$1")
  sys mount -t ext4 "$ms_dev" "$OS_NEW" || die "cannot mount the new slot $1 ($ms_dev)"
}

os_umount_slots() {
  [ -z "$R" ] || return 0
  for us_m in "$OS_MNT/boot-new" "$OS_MNT/boot-old" "$OS_NEW" "$OS_OLD"; do
    if mountpoint -q "$us_m"; then sys umount "$us_m" || log "warning: cannot unmount $us_m"; fi
  done
}

# what makes this device itself, into the new slot OTHER (and, on a Raspberry Pi, its boot partition)
os_carry_over() {
  os_mount_slots "$1"
  os_carry "$OS_OLD" "$OS_NEW"
  co_uuid=$(os_ab UUID "$1")
  os_fix_fstab "$OS_NEW" "$co_uuid"
  if [ "$EF_AB_LAYOUT" = raspi-mbr ]; then
    co_bn="$OS_MNT/boot-new" co_bo="$OS_MNT/boot-old"
    mkdir -p "$co_bn" "$co_bo"
    co_newdev=$(os_ab BOOT "$1")
    co_olddev=$(os_ab BOOT "$(os_other "$1")")
    if [ -z "$R" ]; then
      sys mount -t vfat "$co_newdev" "$co_bn" || die "cannot mount the new boot partition $co_newdev"
      sys mount -t vfat -o ro "$co_olddev" "$co_bo" || die "cannot mount the running boot partition $co_olddev"
    fi
    os_carry_boot "$co_bo" "$co_bn" "$1" "$co_uuid"
  fi
  sync
  os_umount_slots
  log "carried this device's identity, settings, K3s and edgeforge's state into slot $1"
}

os_reboot_into() {
  if [ "${OS_NO_REBOOT:-0}" = 1 ]; then
    log "slot $1 is marked active: it boots (once, as a trial) at the next reboot"
    return 0
  fi
  log "rebooting into slot $1 for its trial boot"
  if [ "$EF_AB_LAYOUT" = raspi-mbr ]; then
    # the firmware boots the [tryboot] partition of autoboot.txt once; a normal reboot returns to [all]
    sys systemctl reboot '0 tryboot' || die "cannot reboot into slot $1 (tryboot)"
  else
    sys systemctl reboot || die "cannot reboot into slot $1"
  fi
}

os_run() {
  or_now=0
  OS_NO_REBOOT=0
  for or_a; do
    case $or_a in
      --now) or_now=1 ;;
      --no-reboot) OS_NO_REBOOT=1 ;;
      *) die "unknown option $or_a" ;;
    esac
  done
  os_load
  or_booted=$(os_booted)
  [ -n "$or_booted" ] || die "no rauc.slot= on the kernel command line: this system did not boot through the A/B boot loader"
  if [ "$or_now" = 0 ] && ! os_in_window; then
    log "outside the maintenance window ($EFO_WINDOW_DAYS $EFO_WINDOW_START-$EFO_WINDOW_END $EFO_WINDOW_TZ): nothing to do now"
    return 0
  fi
  or_trial=$(os_state TRIAL)
  if [ -n "$or_trial" ] && [ "$or_trial" = "$or_booted" ]; then
    log "slot $or_booted is on its trial boot: the health check decides first"
    return 0
  fi
  os_fetch_pointer
  or_want=$(ptr_get version)
  or_have=$(os_state "${or_booted}_VERSION")
  if [ "$or_want" = "$or_have" ]; then
    log "up to date: slot $or_booted runs $or_have, the $EFO_RING ring's release"
    return 0
  fi
  if [ "$(os_state ROLLBACK_VERSION)" = "$or_want" ] && [ "$(os_state ROLLBACK_COUNT)" -ge "$OS_HOLD_AFTER" ] 2>/dev/null; then
    log "held back: $or_want came back $(os_state ROLLBACK_COUNT) times ($(os_state ROLLBACK_REASON)); a person decides: fix the cause, then edgeforge-os-update retry"
    return 0
  fi
  or_file=$(ptr_get "bundle.$EFO_LAYOUT")
  [ -n "$or_file" ] || die "the $EFO_RING ring pointer has no bundle for the $EFO_LAYOUT layout"
  or_bundle=$(os_fetch_bundle "$or_file" "$(ptr_get "sha256.$EFO_LAYOUT")" "$(ptr_get "bytes.$EFO_LAYOUT")") || exit 1
  if [ "$or_now" = 0 ] && ! os_in_window; then
    log "the window closed during the download: $or_want installs in the next one"
    return 0
  fi
  or_other=$(os_other "$or_booted")
  os_state_set "${or_other}_VERSION=" "TRIAL=$or_other" "TRIAL_VERSION=$or_want" "TRIAL_AT=$(os_now)" "TRIAL_STAGE=installing"
  log "installing $or_want into slot $or_other (slot $or_booted, $or_have, keeps running)"
  os_rauc install "$or_bundle" || die "rauc install of $or_want failed (journalctl -u rauc); slot $or_booted is untouched and boots as before"
  os_carry_over "$or_other"
  os_state_set "${or_other}_VERSION=$or_want"
  os_rauc status mark-active other || die "rauc could not mark slot $or_other active; slot $or_booted stays the one that boots"
  os_state_set "TRIAL_STAGE=activated"
  case $or_bundle in "$R$EF_OS_DOWNLOAD"/*) rm -f "$or_bundle" ;; esac
  os_reboot_into "$or_other"
}

os_print_status() {
  os_load
  ps_b=$(os_booted)
  echo "OS updates ($EFO_LAYOUT, ring $EFO_RING): running slot ${ps_b:-unknown}"
  for ps_s in A B; do
    ps_v=$(os_state "${ps_s}_VERSION")
    echo "  slot $ps_s: ${ps_v:-(empty)}"
  done
  [ -z "$(os_state TRIAL)" ] || echo "  trial: slot $(os_state TRIAL) with $(os_state TRIAL_VERSION) since $(os_state TRIAL_AT) ($(os_state TRIAL_STAGE))"
  [ -z "$(os_state ROLLBACK_VERSION)" ] || echo "  last rollback: $(os_state ROLLBACK_VERSION) at $(os_state ROLLBACK_AT), $(os_state ROLLBACK_COUNT) time(s) in a row: $(os_state ROLLBACK_REASON)"
  [ ! -f "$OS_WORK/ring" ] || echo "  $EFO_RING ring pointer: release $(ptr_get version), issued $(ptr_get issued)"
}

os_update_main() {
  umask 077
  case ${1:-run} in
    run)
      shift 2>/dev/null || true
      # one run at a time: the timer and an operator
      mkdir -p "$OS_WORK" || die "cannot create $OS_WORK"
      exec 9>"$OS_WORK/.lock"
      if command -v flock >/dev/null 2>&1 && ! flock -n 9; then die "another run of edgeforge-os-update holds $OS_WORK/.lock"; fi
      os_run "$@"
      ;;
    status) os_print_status ;;
    state) os_state_print ;;
    retry)
      os_load
      os_state_set "ROLLBACK_COUNT=0"
      log "$(os_state ROLLBACK_VERSION) will be tried again in the next window (or now: edgeforge-os-update run --now)"
      ;;
    *)
      echo "usage: edgeforge-os-update [run [--now] [--no-reboot] | status | state | retry]" >&2
      exit 2
      ;;
  esac
}
