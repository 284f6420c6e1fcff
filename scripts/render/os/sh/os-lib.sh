# shellcheck shell=sh
# edgeforge OS updates (docs/os-updates.md): what the updater, the health check and the Raspberry Pi boot
# backend share. After the shell core (log, die, sys, put_file...). Settings come from EF_OS_CONF (this device's
# ring, source, window), the card's layout from EF_OS_LAYOUT, on the partition the two slots share (mounted at
# EF_OS_SHARED) with the state (os-state.sh, included before this file).

OS_CONF="$R$EF_OS_CONF"
OS_LAYOUT="$R$EF_OS_LAYOUT"
# shellcheck disable=SC2034 # the updater and the boot-loader backend keep their files here; the first-boot program does not
OS_WORK="$R$EF_OS_WORK"

# os_get KEY FILE: the value of KEY='value' (or KEY=value) in FILE, unquoted; empty when absent
os_get() {
  sed -n "s/^$1=//p" "$2" 2>/dev/null | tail -n 1 | sed "s/^'\(.*\)'\$/\1/"
}

# the settings and the layout, as variables (read, never sourced: the shared partition is FAT); each program uses some
# shellcheck disable=SC2034
os_load() {
  [ -f "$OS_CONF" ] || die "no OS-update settings at $OS_CONF: this device was not built with os: (docs/os-updates.md)"
  [ -f "$OS_LAYOUT" ] || die "the card's layout file $OS_LAYOUT is missing: is the shared boot partition mounted ($EF_OS_SHARED, $EF_OS_SHARED_UNIT)?"
  EFO_LAYOUT=$(os_get EFO_LAYOUT "$OS_CONF")
  EFO_FLEET=$(os_get EFO_FLEET "$OS_CONF")
  EFO_RING=$(os_get EFO_RING "$OS_CONF")
  EFO_COMPATIBLE=$(os_get EFO_COMPATIBLE "$OS_CONF")
  EFO_SOURCE=$(os_get EFO_SOURCE "$OS_CONF")
  EFO_WINDOW_DAYS=$(os_get EFO_WINDOW_DAYS "$OS_CONF")
  EFO_WINDOW_START=$(os_get EFO_WINDOW_START "$OS_CONF")
  EFO_WINDOW_END=$(os_get EFO_WINDOW_END "$OS_CONF")
  EFO_WINDOW_TZ=$(os_get EFO_WINDOW_TZ "$OS_CONF")
  EFO_HEALTH_TIMEOUT=${EDGEFORGE_OS_HEALTH_TIMEOUT:-$(os_get EFO_HEALTH_TIMEOUT "$OS_CONF")}
  EFO_K3S_SERVICE=$(os_get EFO_K3S_SERVICE "$OS_CONF")
  EF_AB_LAYOUT=$(os_get EF_AB_LAYOUT "$OS_LAYOUT")
  EF_AB_GRUBENV=$(os_get EF_AB_GRUBENV "$OS_LAYOUT")
  EF_AB_ROOT_A=$(os_get EF_AB_ROOT_A "$OS_LAYOUT")
  EF_AB_ROOT_B=$(os_get EF_AB_ROOT_B "$OS_LAYOUT")
  EF_AB_UUID_A=$(os_get EF_AB_UUID_A "$OS_LAYOUT")
  EF_AB_UUID_B=$(os_get EF_AB_UUID_B "$OS_LAYOUT")
  EF_AB_BOOT_A=$(os_get EF_AB_BOOT_A "$OS_LAYOUT")
  EF_AB_BOOT_B=$(os_get EF_AB_BOOT_B "$OS_LAYOUT")
  EF_AB_PART_A=$(os_get EF_AB_PART_A "$OS_LAYOUT")
  EF_AB_PART_B=$(os_get EF_AB_PART_B "$OS_LAYOUT")
  os_state_load
  [ -n "$OS_CUR" ] || log "warning: no readable OS state record ($EF_OS_STATE.0 or .1): which slot holds which release is unknown until the next install"
  [ "$EF_AB_LAYOUT" = "$EFO_LAYOUT" ] || die "this card's layout is $EF_AB_LAYOUT but the device's settings say $EFO_LAYOUT: it was flashed with another profile's image"
}

# the slot running now: rauc.slot= on the kernel command line (the boot loader put it there)
os_booted() {
  tr ' ' '\n' <"$R/proc/cmdline" 2>/dev/null | sed -n 's/^rauc\.slot=//p' | tail -n 1
}

# os_ab KIND SLOT: the layout's ROOT (device), UUID (root PARTUUID), BOOT (device) or PART (boot partition number) of SLOT
os_ab() {
  eval "printf '%s' \"\${EF_AB_$1_$2}\""
}

os_other() {
  if [ "$1" = A ]; then echo B; else echo A; fi
}

os_now() {
  date -u +%Y-%m-%dT%H:%M:%SZ
}

# os_rauc ARGS...: rauc, through `sys` (tests record it; on the device RAUC's service does the work)
os_rauc() {
  sys rauc "$@"
}
