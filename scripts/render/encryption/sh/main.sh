# shellcheck shell=sh
# edgeforge disk encryption: the encrypt_data_volume step. Safe to run again: a formatted volume is never
# formatted again, a bound one not bound again; each run finishes what an interrupted one left.
#
# EDV_SECRETS: where the recovery passphrase file (luks-recovery) is; default bundle/secrets (which
# edv_unseal_secrets links to the RAM copies when the secrets travelled sealed).

edv_main() {
  if [ "$EDV_MODE" = none ]; then
    log "encryption mode none (the inventory says so): no data volume; K3s data stays on the root filesystem"
    return 0
  fi
  for em_tool in cryptsetup clevis jose blkid sfdisk mountpoint; do
    have "$em_tool" || die "the encrypted data volume needs '$em_tool'; add it to the base image (packages: cryptsetup-bin, clevis, clevis-luks$([ "$EDV_PIN" != tang ] && echo ', clevis-tpm2'), jose, util-linux, fdisk)"
  done
  [ "$EDV_PIN" = tang ] || [ "$EDV_PIN" = tpm2 ] || [ "$EDV_PIN" = sss ] || die "unknown clevis pin '$EDV_PIN'"
  em_secrets="${EDV_SECRETS:-$BUNDLE/secrets}"
  { mkdir -p "$STATE/tmp" && chmod 0700 "$STATE/tmp"; } || die "cannot create $STATE/tmp"
  # the passphrase without its trailing newline (what an admin types), in RAM when /run is there
  em_kdir="$R$EF_RUN_DIR"
  mkdir -p "$em_kdir" 2>/dev/null && chmod 0700 "$em_kdir" || em_kdir="$STATE/tmp"
  em_key="$em_kdir/luks-recovery.key"
  rm -f "$em_key"
  if [ -f "$em_secrets/luks-recovery" ]; then
    (umask 077 && printf '%s' "$(cat "$em_secrets/luks-recovery")" >"$em_key") || die "cannot prepare the recovery key file"
  fi

  em_dev=$(edv_volume_device) || exit $?
  if ! cryptsetup isLuks "$em_dev" 2>/dev/null; then
    [ -f "$em_key" ] || die "$em_dev is not formatted yet and the bundle has no recovery passphrase (secrets/luks-recovery): deliver the bundle again (edgeforge provision)"
    edv_refuse_foreign "$em_dev"
    edv_luks_format "$em_dev" "$em_key"
    edv_check_recovery "$em_dev" "$em_key"
  fi
  em_label=$(cryptsetup luksDump "$em_dev" 2>/dev/null | sed -n 's/^Label:[[:space:]]*//p')
  [ "$em_label" = "$EF_DATA_NAME" ] || die "$em_dev is a LUKS volume labelled '$em_label', not one edgeforge made ($EF_DATA_NAME); refusing to touch it"
  em_uuid=$(cryptsetup luksUUID "$em_dev") || die "cannot read the LUKS UUID of $em_dev"
  rm -f "$STATE/data-volume.created"

  em_pins=$(edv_bound_pins "$em_dev")
  if [ -z "$em_pins" ]; then
    [ -f "$em_key" ] || die "$em_dev has no clevis binding and the recovery passphrase is no longer in the bundle. Bind by hand: get it with 'edgeforge keys recover $EF_DEVICE_ID', then clevis luks bind -d $em_dev $EDV_PIN \"\$(cat $BUNDLE/encryption/clevis-config.json)\""
    edv_clevis_bind "$em_dev" "$em_key" "$EDV_PIN" "$BUNDLE/encryption/clevis-config.json"
  else
    case $em_pins in
      *": $EDV_PIN "*) log "already bound: $(echo "$em_pins" | cut -c1-60 | tr '\n' ' ')" ;;
      *) log "WARNING: $em_dev is bound to [$(echo "$em_pins" | cut -d "'" -f 1 | tr '\n' ' ')] but the inventory now says $EDV_PIN; rebind by hand (clevis luks bind, then clevis luks unbind -s SLOT) with the recovery passphrase" ;;
    esac
  fi

  edv_install_boot "$em_uuid"
  edv_open_and_mount "$em_dev"
  rm -f "$em_key"
  printf 'device=%s\nuuid=%s\ncipher=%s\npin=%s\n' "$em_dev" "$em_uuid" "$EDV_CIPHER" "$EDV_PIN" >"$STATE/data-volume" || die "cannot write $STATE/data-volume"
  log "encrypted data volume ready ($EDV_CIPHER, clevis $EDV_PIN); the recovery passphrase is escrowed to the admins, not kept here"
}
