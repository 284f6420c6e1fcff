# shellcheck shell=sh
# edgeforge disk encryption: find or create the data volume, format it (LUKS2, capped argon2id), bind it
# to clevis. Variables EDV_* come from the generated header (see scripts/render/encryption/compose.ts);
# log/die/sys/R/STATE come from the shell core (scripts/render/shell/core.sh).
# Reads (blkid, cryptsetup isLuks/luksDump, sfdisk -d) run directly; every change goes through `sys`.

# the whole disk holding /, and the number of the root partition: "DISK NUM"
edv_root_disk() {
  rd_majmin=$(mountpoint -d "${EDV_ROOT_MOUNT:-/}" 2>/dev/null) || return 1
  rd_sys=$(readlink -f "/sys/dev/block/$rd_majmin") || return 1
  [ -r "$rd_sys/partition" ] || return 1
  printf '/dev/%s %s\n' "$(basename "$(dirname "$rd_sys")")" "$(cat "$rd_sys/partition")"
}

# edv_part_path DISK NUM: /dev/sda 3 -> /dev/sda3, /dev/mmcblk0 3 -> /dev/mmcblk0p3
edv_part_path() {
  case $1 in
    *[0-9]) printf '%sp%s\n' "$1" "$2" ;;
    *) printf '%s%s\n' "$1" "$2" ;;
  esac
}

# sectors of a disk or disk image
edv_disk_sectors() {
  if [ -b "$1" ]; then blockdev --getsz "$1"; else echo $(($(stat -c %s "$1") / 512)); fi
}

# "NUM START SIZE" for every partition in `sfdisk -d` output on stdin
edv_sfdisk_parts() {
  sed -n 's/^\([^ ]*[^0-9]\)\([0-9][0-9]*\) *: *start= *\([0-9][0-9]*\), *size= *\([0-9][0-9]*\).*/\2 \3 \4/p'
}

# edv_append_partition DISK ROOTNUM MIN_MIB: a new partition in the free space after the root partition and
# every partition that follows it (an edgeforge image puts its K3s airgap partition EFK3S right after root),
# up to the end of the disk. Prints the new partition's number.
edv_append_partition() {
  ap_disk=$1 ap_root=$2 ap_min=$3
  ap_dump=$(sfdisk -d "$ap_disk" 2>/dev/null) || die "cannot read the partition table of $ap_disk (sfdisk -d)"
  ap_label=$(printf '%s\n' "$ap_dump" | sed -n 's/^label: *//p')
  ap_total=$(edv_disk_sectors "$ap_disk")
  if [ "$ap_label" = gpt ]; then
    # an image written to a larger card keeps its backup GPT where the image ended: move it to the end
    ap_last=$(printf '%s\n' "$ap_dump" | sed -n 's/^last-lba: *//p')
    if [ -n "$ap_last" ] && [ "$ap_last" -lt $((ap_total - 34)) ]; then
      sys sfdisk -q --relocate gpt-bak-std "$ap_disk" || die "cannot move the backup GPT of $ap_disk to the end of the disk"
      ap_dump=$(sfdisk -d "$ap_disk") || die "cannot read the partition table of $ap_disk"
    fi
    ap_end=$(($(printf '%s\n' "$ap_dump" | sed -n 's/^last-lba: *//p') + 1))
  elif [ "$ap_label" = dos ]; then
    ap_end=$ap_total
  else
    die "$ap_disk has no partition table sfdisk understands (label '$ap_label'); name a data partition in the profile (storage.dataPartition)"
  fi
  ap_parts=$(printf '%s\n' "$ap_dump" | edv_sfdisk_parts)
  ap_rs=$(printf '%s\n' "$ap_parts" | awk -v n="$ap_root" '$1 == n { print $2 }')
  ap_rz=$(printf '%s\n' "$ap_parts" | awk -v n="$ap_root" '$1 == n { print $3 }')
  [ -n "$ap_rs" ] || die "root partition $ap_root not found on $ap_disk"
  # the end of the last partition at or after root (root itself when none follows it)
  ap_after=$(printf '%s\n' "$ap_parts" | awk -v s="$ap_rs" -v m="$((ap_rs + ap_rz))" '$2 >= s && $2 + $3 > m { m = $2 + $3 } END { print m }')
  ap_start=$(((ap_after + 2047) / 2048 * 2048)) # 1 MiB aligned, as every partitioner does
  ap_next=$(printf '%s\n' "$ap_parts" | awk -v s="$ap_start" -v e="$ap_end" 'BEGIN { m = e } $2 >= s && $2 < m { m = $2 } END { print m }')
  # whole MiB: LUKS2 with 4 KiB sectors refuses a device whose size is not a multiple of its sector size
  ap_size=$(((ap_next - ap_start) / 2048 * 2048))
  if [ "$ap_size" -lt $((ap_min * 2048)) ]; then
    # permanent: the card does not grow (the first-boot service does not retry it)
    die_permanent "only $((ap_size > 0 ? ap_size / 2048 : 0)) MiB free after the root partition of $ap_disk (and the partitions after it) (need $ap_min MiB for the encrypted data volume). The root filesystem was probably grown over the whole disk: with encryption on, the base image must not grow root (cloud-init growpart off), or name a partition/disk in the profile (storage.dataPartition)"
  fi
  if [ "$ap_label" = dos ]; then
    ap_count=$(printf '%s\n' "$ap_parts" | awk '$1 <= 4' | grep -c .)
    [ "$ap_count" -lt 4 ] || die "$ap_disk has no free primary MBR slot for the data volume; name a partition in the profile (storage.dataPartition)"
    ap_line="start=$ap_start, size=$ap_size, type=83"
  else
    ap_line="start=$ap_start, size=$ap_size, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"$EF_DATA_NAME\""
  fi
  printf '%s\n' "$ap_line" | sys sfdisk -q --no-reread --no-tell-kernel --append "$ap_disk" >/dev/null ||
    die "sfdisk could not add the data partition to $ap_disk ($ap_line)"
  ap_num=$(sfdisk -d "$ap_disk" | edv_sfdisk_parts | awk -v s="$ap_start" '$2 == s { print $1 }')
  [ -n "$ap_num" ] || die "the new data partition at sector $ap_start is not in the partition table of $ap_disk"
  if [ -b "$ap_disk" ]; then
    # the root disk is busy, so the kernel cannot re-read the whole table: add just this partition
    sys partx -a --nr "$ap_num" "$ap_disk" 2>/dev/null || sys partx -u --nr "$ap_num" "$ap_disk" || true
    sys udevadm settle 2>/dev/null || true
  fi
  log "created partition $ap_num on $ap_disk: $((ap_size / 2048)) MiB at sector $ap_start for the data volume"
  echo "$ap_num"
}

# The data volume's block device: recorded by an earlier run, named in the profile, or a new partition.
# Records it in $STATE/data-volume.dev before anything is written to it.
edv_volume_device() {
  if [ -f "$STATE/data-volume.dev" ]; then
    vd_dev=$(cat "$STATE/data-volume.dev")
    if [ -e "$vd_dev" ]; then
      echo "$vd_dev"
      return 0
    fi
  fi
  if [ -n "$EDV_DATA_PARTITION" ]; then
    [ -e "$EDV_DATA_PARTITION" ] || die "the profile names $EDV_DATA_PARTITION for the data volume, but it does not exist on this device"
    vd_dev=$EDV_DATA_PARTITION
  else
    vd_dev=$(blkid -o device -t LABEL="$EF_DATA_NAME" 2>/dev/null | while read -r vd_x; do cryptsetup isLuks "$vd_x" 2>/dev/null && echo "$vd_x" && break; done)
    if [ -z "$vd_dev" ]; then
      if [ -n "${EDV_DISK:-}" ]; then
        vd_disk=$EDV_DISK vd_root=${EDV_ROOT_PART:?EDV_ROOT_PART must name the root partition number with EDV_DISK}
      else
        vd_rd=$(edv_root_disk) || die "cannot tell which disk holds / (mountpoint -d /); name the data partition in the profile (storage.dataPartition)"
        vd_disk=${vd_rd% *} vd_root=${vd_rd#* }
      fi
      vd_num=$(edv_append_partition "$vd_disk" "$vd_root" "${EDV_MIN_MIB:-1024}") || exit $?
      vd_dev=$(edv_part_path "$vd_disk" "$vd_num")
      if [ -b "$vd_disk" ]; then
        vd_i=0
        while [ ! -b "$vd_dev" ] && [ "$vd_i" -lt 20 ]; do sleep 0.5; vd_i=$((vd_i + 1)); done
        [ -b "$vd_dev" ] || die "the new partition $vd_dev did not appear (partx); reboot and run the program again"
      fi
      : >"$STATE/data-volume.created"
    fi
  fi
  { mkdir -p "$STATE" && printf '%s\n' "$vd_dev" >"$STATE/data-volume.dev"; } || die "cannot write $STATE/data-volume.dev"
  echo "$vd_dev"
}

# refuse to format over anything that is not ours (a named partition may hold someone's data)
edv_refuse_foreign() {
  rf_type=$(blkid -p -o value -s TYPE "$1" 2>/dev/null || true)
  if [ -n "$rf_type" ] && [ "$rf_type" != crypto_LUKS ] && [ ! -f "$STATE/data-volume.created" ]; then
    die "$1 holds a $rf_type filesystem/signature: edgeforge will not format over existing data. If it may be erased: wipefs -a $1, then run the program again"
  fi
}

# edv_luks_format DEV KEYFILE: LUKS2, the profile's cipher, argon2id with the capped memory cost and a
# fixed time cost (no benchmark: every device gets the same header parameters). The recovery passphrase
# (KEYFILE, no trailing newline) is keyslot 0.
edv_luks_format() {
  sys cryptsetup luksFormat --batch-mode --type luks2 \
    --cipher "$EDV_CIPHER" --key-size "$EDV_KEY_BITS" --sector-size "$EDV_SECTOR_SIZE" \
    --pbkdf argon2id --pbkdf-memory "$EDV_PBKDF_MEMORY" --pbkdf-parallel "$EDV_PBKDF_PARALLEL" \
    --pbkdf-force-iterations "$EDV_PBKDF_ITER" \
    --label "$EF_DATA_NAME" --key-slot 0 --key-file "$2" "$1" ||
    die "cryptsetup luksFormat $1 failed (see above; kernel without dm-crypt or without the $EDV_CIPHER cipher?)"
  log "formatted $1: LUKS2 $EDV_CIPHER, argon2id ${EDV_PBKDF_MEMORY} KiB x $EDV_PBKDF_ITER, recovery passphrase in keyslot 0"
}

# edv_check_recovery DEV KEYFILE: the escrowed passphrase opens keyslot 0 (before it leaves the device)
edv_check_recovery() {
  cryptsetup open --test-passphrase --key-slot 0 --key-file "$2" "$1" ||
    die "the recovery passphrase does not open keyslot 0 of $1: this volume was not made with this bundle's recovery key. Stop and check (edgeforge keys recover $EF_DEVICE_ID)"
}

# the clevis pins bound to DEV, one per line ("1: tang '{...}'")
edv_bound_pins() {
  clevis luks list -d "$1" 2>/dev/null || true
}

# edv_clevis_bind DEV KEYFILE PIN CONFIGFILE: no -y, so clevis checks the tang advertisement against the
# pinned thumbprint (thp) itself, offline when the config carries the advertisement.
edv_clevis_bind() {
  cb_cfg=$(cat "$4") || die "cannot read $4"
  sys clevis luks bind -d "$1" -k "$2" "$3" "$cb_cfg" ||
    die "clevis luks bind ($3) on $1 failed (see above): tang advertisement not signed by the pinned thumbprint, tang unreachable (no saved advertisement), or TPM not available"
  log "bound $1 to clevis pin $3"
}
