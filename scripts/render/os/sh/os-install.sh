# shellcheck shell=sh
# OS updates' part of the first-boot program (composed after the renewal check's): step_record's day-2 hook
# renewal_install also installs, on a device with A/B slots, the partition both slots share (mounted at every
# boot), RAUC's configuration from the card's layout, the keyring, the health check and the updater's timer.
# Idempotent (put_file); after os-lib.sh.

# RAUC's system.conf for this card (docs/os-updates.md): its slots from the layout written when it was made
os_system_conf() {
  echo "# written by edgeforge's first-boot program from $EF_OS_LAYOUT (docs/os-updates.md)"
  echo '[system]'
  echo "compatible=$EFO_COMPATIBLE"
  if [ "$EF_AB_LAYOUT" = uefi-gpt ]; then
    echo 'bootloader=grub'
    echo "grubenv=$EF_OS_SHARED/$EF_AB_GRUBENV"
  else
    echo 'bootloader=custom'
  fi
  echo "statusfile=$EF_OS_RAUC_STATUS"
  echo 'bundle-formats=verity'
  # the updater marks the slot active itself, after carrying the device over into it
  echo 'activate-installed=false'
  echo
  echo '[keyring]'
  echo "path=$EF_OS_KEYRING"
  if [ "$EF_AB_LAYOUT" = raspi-mbr ]; then
    echo
    echo '[handlers]'
    echo "bootloader-custom-backend=$EF_OS_TRYBOOT"
  fi
  sc_i=0
  for sc_s in A B; do
    printf '\n[slot.rootfs.%s]\ndevice=%s\ntype=ext4\nbootname=%s\nresize=true\n' "$sc_i" "$(os_ab ROOT "$sc_s")" "$sc_s"
    if [ "$EF_AB_LAYOUT" = raspi-mbr ]; then
      printf '\n[slot.boot.%s]\ndevice=%s\ntype=vfat\nparent=rootfs.%s\n' "$sc_i" "$(os_ab BOOT "$sc_s")" "$sc_i"
    fi
    sc_i=$((sc_i + 1))
  done
}

os_update_install() {
  [ -f "$BUNDLE/os/os-update.conf" ] || return 0
  for oi_t in rauc openssl curl; do
    have "$oi_t" || die_permanent "OS updates need '$oi_t' in the base image (package $oi_t; docs/os-updates.md)"
  done
  oi_unit="$R/etc/systemd/system/$EF_OS_SHARED_UNIT"
  put_file "$BUNDLE/os/$EF_OS_SHARED_UNIT" "$oi_unit" 0644
  oi_mnt=$CHANGED
  put_file "$BUNDLE/os/rauc-edgeforge.conf" "$R/etc/systemd/system/rauc.service.d/10-edgeforge.conf" 0644
  [ "$CHANGED" = 0 ] || oi_mnt=1
  if [ "$oi_mnt" = 1 ] || [ ! -f "$STATE/os-shared-mounted" ]; then
    sys systemctl daemon-reload || die "systemctl daemon-reload failed"
    sys systemctl enable --now "$EF_OS_SHARED_UNIT" >/dev/null 2>&1 || die "cannot mount the shared boot partition ($EF_OS_SHARED_UNIT)"
    : >"$STATE/os-shared-mounted"
  fi
  put_file "$BUNDLE/os/os-update.conf" "$R$EF_OS_CONF" 0644
  # read by systemd at the next boot (every trial boot is one): a hang there resets the board
  put_file "$BUNDLE/os/watchdog.conf" "$R$EF_OS_WATCHDOG_CONF" 0644
  put_file "$BUNDLE/os/keyring.pem" "$R$EF_OS_KEYRING" 0644
  os_load
  os_system_conf >"$STATE/tmp/system.conf" || die "cannot write $STATE/tmp/system.conf"
  put_file "$STATE/tmp/system.conf" "$R$EF_OS_RAUC_CONF" 0644
  oi_rauc=$CHANGED
  rm -f "$STATE/tmp/system.conf"
  if [ "$EF_AB_LAYOUT" = raspi-mbr ]; then put_file "$BUNDLE/os/${EF_OS_TRYBOOT##*/}" "$R$EF_OS_TRYBOOT" 0755; fi
  put_file "$BUNDLE/os/${EF_OS_HEALTH_PROGRAM##*/}" "$R$EF_OS_HEALTH_PROGRAM" 0755
  put_file "$BUNDLE/os/${EF_OS_HEALTH_SERVICE##*/}" "$R$EF_OS_HEALTH_SERVICE" 0644
  if [ "$CHANGED" = 1 ] || [ ! -f "$STATE/os-health.enabled" ]; then
    sys systemctl daemon-reload || die "systemctl daemon-reload failed"
    sys systemctl enable "${EF_OS_HEALTH_SERVICE##*/}" >/dev/null 2>&1 || die "cannot enable ${EF_OS_HEALTH_SERVICE##*/}"
    : >"$STATE/os-health.enabled"
  fi
  # RAUC reads its configuration when its service starts (on demand, over D-Bus)
  if [ "$oi_rauc" = 1 ]; then sys systemctl try-restart rauc.service >/dev/null 2>&1 || true; fi
  install_timer_job "$BUNDLE/os" "$EF_OS_PROGRAM" "$EF_OS_SERVICE" "$EF_OS_TIMER" \
    "OS updates on: edgeforge-os-update.timer installs the $EFO_RING ring's release inside the maintenance window; slot $(os_booted) runs $(os_state "$(os_booted)_VERSION")"
}

# the day-2 hook step_record calls: the renewal check's install (renamed renewal_install_check when this
# fragment is composed), then the OS updater's
renewal_install() {
  renewal_install_check
  os_update_install
}
