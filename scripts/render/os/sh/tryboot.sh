# shellcheck shell=sh
# edgeforge-tryboot: RAUC's custom boot-loader backend on a Raspberry Pi (system.conf bootloader=custom), over the
# firmware's autoboot.txt on the shared boot-select partition (docs/os-updates.md). RAUC calls it as
#   get-primary | set-primary SLOT | get-state SLOT | set-state SLOT good|bad
# autoboot.txt's [all] boot_partition is the committed slot (a normal boot, a power cut, a watchdog reset all
# land there); its [tryboot] boot_partition is the slot `reboot "0 tryboot"` boots once.
#   set-primary B     [tryboot] = B's boot partition (the updater then reboots with tryboot)
#   set-state B good  on B's trial: commit, [all] = B ([tryboot] = the other)
#   set-state B bad   B is not committed ([all] = the other) and is noted bad
# After os-lib.sh.

TB_FILE="$R$EF_OS_SHARED/autoboot.txt"
# what the two slots share about the boot loader: a slot marked primary and not committed, slots marked bad
TB_DIR="$R$EF_OS_SHARED/edgeforge"

# the partition number [SECTION] boots ("all" or "tryboot")
tb_part() {
  awk -v want="[$1]" '/^\[/ { sec = $0; next } sec == want && /^boot_partition=/ { sub(/^boot_partition=/, ""); print }' "$TB_FILE" 2>/dev/null | tail -n 1
}

tb_slot_of() {
  if [ "$1" = "$EF_AB_PART_A" ]; then echo A; elif [ "$1" = "$EF_AB_PART_B" ]; then echo B; fi
}

tb_part_of() {
  os_ab PART "$1"
}

# tb_write ALLPART TRYPART: overwritten in place (one sector, padded with comments): the firmware finds the old
# text or the new one after a power cut, never an empty file
tb_write() {
  fixed_put "$(printf '[all]\ntryboot_a_b=1\nboot_partition=%s\n[tryboot]\nboot_partition=%s' "$1" "$2")
" "$EF_OS_AUTOBOOT_BYTES" "$TB_FILE" || die "cannot write $TB_FILE"
}

tryboot_main() {
  os_load
  [ -f "$TB_FILE" ] || die "no autoboot.txt on the boot-select partition ($TB_FILE)"
  tb_all=$(tb_slot_of "$(tb_part all)")
  case ${1:-} in
    get-primary)
      # a slot marked primary but not committed yet boots next (through tryboot)
      tb_pending=$(cat "$TB_DIR/tryboot-pending" 2>/dev/null || true)
      echo "${tb_pending:-$tb_all}"
      ;;
    set-primary)
      [ "$2" = A ] || [ "$2" = B ] || die "unknown slot $2"
      mkdir -p "$TB_DIR"
      if [ "$2" = "$tb_all" ]; then
        rm -f "$TB_DIR/tryboot-pending"
      else
        tb_write "$(tb_part_of "$tb_all")" "$(tb_part_of "$2")"
        printf '%s\n' "$2" >"$TB_DIR/tryboot-pending"
      fi
      ;;
    get-state)
      if grep -qx "$2" "$TB_DIR/tryboot-bad" 2>/dev/null; then echo bad; else echo good; fi
      ;;
    set-state)
      mkdir -p "$TB_DIR"
      case $3 in
        good)
          if [ "$2" != "$tb_all" ]; then tb_write "$(tb_part_of "$2")" "$(tb_part_of "$(os_other "$2")")"; fi
          sed -i "/^$2\$/d" "$TB_DIR/tryboot-bad" 2>/dev/null || true
          ;;
        bad)
          if [ "$2" = "$tb_all" ]; then tb_write "$(tb_part_of "$(os_other "$2")")" "$(tb_part_of "$2")"; fi
          grep -qx "$2" "$TB_DIR/tryboot-bad" 2>/dev/null || echo "$2" >>"$TB_DIR/tryboot-bad"
          ;;
        *) die "set-state needs good or bad, not '$3'" ;;
      esac
      rm -f "$TB_DIR/tryboot-pending"
      ;;
    *)
      echo "usage: edgeforge-tryboot get-primary | set-primary SLOT | get-state SLOT | set-state SLOT good|bad" >&2
      exit 2
      ;;
  esac
}
