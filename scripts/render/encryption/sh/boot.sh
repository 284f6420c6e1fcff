# shellcheck shell=sh
# edgeforge disk encryption: what makes the volume come back at every boot, and the first open + mount.
#
# Boot chain (systemd): k3s.service has RequiresMountsFor= each bind path of EF_DATA_BINDS
#   -> the bind mounts from /etc/fstab -> EF_DATA_MOUNT (ext4 on /dev/mapper/EF_DATA_NAME)
#   -> x-systemd.requires=EF_DATA_UNLOCK_UNIT, which runs EF_DATA_UNLOCK_PROGRAM: clevis luks unlock,
#      retried with backoff for as long as it takes (tang unreachable = degraded mode: the device boots,
#      SSH works, K3s waits; nothing is written to the plaintext root in the meantime).
# The fstab entries are nofail, so a locked volume never stops the boot itself.

# edv_put SRC DEST MODE: put_file (the shell core), remembering in EDV_CHANGED that something was written
edv_put() {
  put_file "$@"
  [ "$CHANGED" = 0 ] || EDV_CHANGED=1
}

# edv_managed_block FILE KEY TEXT: replace the lines between "# edgeforge KEY begin/end" markers (or append)
edv_managed_block() {
  mb_file=$1 mb_key=$2
  mkdir -p "$STATE/tmp"
  {
    if [ -f "$mb_file" ]; then
      awk -v b="# edgeforge $mb_key begin" -v e="# edgeforge $mb_key end" '$0 == b { skip = 1; next } $0 == e { skip = 0; next } !skip' "$mb_file"
    fi
    printf '# edgeforge %s begin\n%s\n# edgeforge %s end\n' "$mb_key" "$3" "$mb_key"
  } >"$STATE/tmp/edv-block" || die "cannot write $STATE/tmp/edv-block"
  edv_put "$STATE/tmp/edv-block" "$mb_file" 0644
  rm -f "$STATE/tmp/edv-block"
}

# edv_install_boot UUID: fstab, the unlock program and unit, K3s drop-ins (crypttab: a comment only)
edv_install_boot() {
  ib_uuid=$1
  EDV_CHANGED=0
  put_text "EDV_UUID=$ib_uuid
EDV_NAME=$EF_DATA_NAME
EDV_DEVICE_ID=$EF_DEVICE_ID" "$R$EF_DATA_CONF" 0644
  [ "$CHANGED" = 0 ] || EDV_CHANGED=1
  # No live crypttab entry: systemd-cryptsetup-generator makes /dev/mapper/$EF_DATA_NAME require
  # systemd-cryptsetup@$EF_DATA_NAME.service even with noauto, and with tang down that unit asks for a passphrase
  # on the console (found by the qemu e2e test: minutes of boot delay, a prompt no one answers).
  # edgeforge-unlock-data is the only opener; the comment tells an admin the manual way.
  edv_managed_block "$R/etc/crypttab" data-volume "# $EF_DATA_NAME UUID=$ib_uuid none luks  (opened by ${EF_DATA_UNLOCK_PROGRAM##*/}, not here: see $EF_DATA_UNLOCK_PROGRAM)
# by hand, with the recovery passphrase (edgeforge keys recover $EF_DEVICE_ID): cryptsetup open /dev/disk/by-uuid/$ib_uuid $EF_DATA_NAME && systemctl start k3s"
  ib_fstab="/dev/mapper/$EF_DATA_NAME $EF_DATA_MOUNT ext4 defaults,noatime,nofail,x-systemd.requires=$EF_DATA_UNLOCK_UNIT,x-systemd.device-timeout=0 0 2"
  for ib_b in $EF_DATA_BINDS; do
    ib_fstab="$ib_fstab
$EF_DATA_MOUNT/${ib_b#*:} ${ib_b%%:*} none bind,nofail,x-systemd.requires-mounts-for=$EF_DATA_MOUNT 0 0"
  done
  edv_managed_block "$R/etc/fstab" data-volume "$ib_fstab"
  edv_put "$BUNDLE/encryption/${EF_DATA_UNLOCK_PROGRAM##*/}" "$R$EF_DATA_UNLOCK_PROGRAM" 0755
  edv_put "$BUNDLE/encryption/$EF_DATA_UNLOCK_UNIT" "$R/etc/systemd/system/$EF_DATA_UNLOCK_UNIT" 0644
  for ib_svc in k3s k3s-agent; do
    edv_put "$BUNDLE/encryption/k3s-data-volume.conf" "$R/etc/systemd/system/$ib_svc.service.d/20-edgeforge-data-volume.conf" 0644
  done
  if [ "$EDV_CHANGED" = 1 ]; then
    sys systemctl daemon-reload || die "systemctl daemon-reload failed"
    sys systemctl enable "$EF_DATA_UNLOCK_UNIT" >/dev/null 2>&1 || die "cannot enable $EF_DATA_UNLOCK_UNIT"
    log "boot unlock installed: fstab (nofail), $EF_DATA_UNLOCK_UNIT, K3s waits via RequiresMountsFor"
  fi
}

# edv_open_and_mount DEV: first open through clevis (proves the binding works while the recovery key is
# still here), a filesystem on first use, the data mount and the bind mounts (moving what is already there).
edv_open_and_mount() {
  om_map="$R/dev/mapper/$EF_DATA_NAME"
  if [ ! -e "$om_map" ]; then
    sys clevis luks unlock -d "$1" -n "$EF_DATA_NAME" ||
      die "clevis could not unlock $1 although it is bound: is the tang server reachable from here (curl its /adv)? Is the TPM the one it was bound to? Run the program again when it is; the recovery passphrase stays in the bundle until then"
  fi
  if [ -z "$(blkid -p -o value -s TYPE "$om_map" 2>/dev/null || true)" ]; then
    sys mkfs.ext4 -q -m 1 -L edgeforge-fs "$om_map" || die "mkfs.ext4 on $om_map failed"
    log "made an ext4 filesystem on $om_map"
  fi
  mkdir -p "$R$EF_DATA_MOUNT" || die "cannot create $EF_DATA_MOUNT"
  if ! mountpoint -q "$R$EF_DATA_MOUNT"; then
    sys mount -t ext4 -o noatime "$om_map" "$R$EF_DATA_MOUNT" || die "cannot mount $om_map on $EF_DATA_MOUNT"
  fi
  for om_b in $EF_DATA_BINDS; do
    om_path="$R${om_b%%:*}" om_sub="$R$EF_DATA_MOUNT/${om_b#*:}"
    mkdir -p "$om_sub" "$om_path" || die "cannot create $om_sub or $om_path"
    chmod 0700 "$om_sub" || die "cannot chmod $om_sub"
    mountpoint -q "$om_path" && continue
    # a device provisioned before encryption already has data here: move it onto the volume
    if [ -n "$(ls -A "$om_path" 2>/dev/null)" ]; then
      cp -a "$om_path/." "$om_sub/" || die "cannot copy ${om_path#"$R"} onto the encrypted volume"
      find "$om_path" -mindepth 1 -delete || die "cannot empty ${om_path#"$R"} after copying it to the encrypted volume"
      log "moved the contents of ${om_path#"$R"} onto the encrypted volume (the old blocks on the root filesystem are not wiped)"
    fi
    sys mount --bind "$om_sub" "$om_path" || die "cannot bind-mount $om_sub on $om_path"
  done
  log "data volume open and mounted: $(echo "$EF_DATA_BINDS" | sed 's/:[^ ]*//g')"
}
