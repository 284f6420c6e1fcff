# shellcheck shell=sh
# edgeforge device programs: the shell core every program on the device includes once (first-boot,
# encryption, unsealing), right after its generated header (the EF_* layout variables from
# scripts/device/layout.ts and the program's own settings).
# Every path is under $R (EDGEFORGE_ROOT, empty on a device) so the same program can run in a sandbox
# directory or a per-device root; every command that changes the running system goes through `sys`,
# which a test or harness can replace with EDGEFORGE_SYS (it receives the command and its arguments).

R="${EDGEFORGE_ROOT:-}"
R="${R%/}"
BUNDLE="${EDGEFORGE_BUNDLE:-$R$EF_BUNDLE_DIR}"
STATE="$R$EF_STATE_DIR"
LOG="${EDGEFORGE_LOG:-$R$EF_LOG_FILE}"
CHANGED=0

log() {
  # to stderr (cloud-init-output.log, the provision session) and to the device's own log
  printf '%s edgeforge-firstboot[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$STEP" "$*" >&2
  if [ -d "${LOG%/*}" ]; then
    printf '%s [%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$STEP" "$*" >>"$LOG" 2>/dev/null || true
  fi
}

# the last failure message of any device program, for the program that ran it (best effort)
last_error() {
  [ ! -d "$STATE/tmp" ] || printf '%s\n' "$1" >"$STATE/tmp/last-error" 2>/dev/null || true
}

# die MSG: log it and exit 1 (worth trying again: the network, tang, a busy disk). A program that can say
# more (where it stopped, how to resume) defines on_die.
die() {
  log "FAILED: $*"
  last_error "$*"
  if command -v on_die >/dev/null 2>&1; then on_die "$*"; fi
  exit 1
}

# die_permanent MSG: a failure that trying again cannot fix (a pinned hash mismatch, a card too small): exit
# EXIT_PERMANENT, which a caller passes on (`|| exit $?`) and the first-boot service does not retry.
EXIT_PERMANENT=$EF_EXIT_PERMANENT
die_permanent() {
  log "FAILED (permanent, not retried): $*"
  last_error "$*"
  if command -v on_die >/dev/null 2>&1; then on_die "$*" permanent; fi
  exit "$EXIT_PERMANENT"
}

# flush FILE-OR-DIR to the disk (coreutils sync FILE is fsync; a sync without arguments otherwise)
flush() {
  sync "$1" 2>/dev/null || sync
}

# durable_text TEXT DEST [MODE]: DEST holds the old text or TEXT+newline after a power cut, never a mix, on a
# journaling filesystem (write a temp file, fsync it, rename it over DEST, fsync it and the directory: on vfat the
# renamed file's directory entry is written with the file, not with its directory). Not on FAT: see fixed_put.
durable_text() {
  printf '%s\n' "$1" >"$2.edgeforge-new" || return 1
  [ -z "${3:-}" ] || chmod "$3" "$2.edgeforge-new" || return 1
  flush "$2.edgeforge-new"
  mv -f "$2.edgeforge-new" "$2" || return 1
  flush "$2"
  flush "${2%/*}"
}

# fixed_text TEXT BYTES: TEXT (ending in a newline) padded with comment lines ('#', at most 64 bytes each, a last
# shorter one) to exactly BYTES bytes; fails when it does not fit. The same padding as fixedSizeText (render/os/slots.ts).
fixed_text() {
  ft_n=$(($2 - $(printf '%s' "$1" | wc -c)))
  [ "$ft_n" -ge 0 ] || return 1
  printf '%s' "$1"
  while [ "$ft_n" -ge 64 ]; do
    printf '%s\n' '###############################################################'
    ft_n=$((ft_n - 64))
  done
  [ "$ft_n" = 0 ] || printf "%$((ft_n - 1))s\n" '' | tr ' ' '#'
}

# fixed_put TEXT BYTES DEST: DEST becomes fixed_text TEXT BYTES, durably. On FAT a rename is not atomic (a power cut
# between its steps can empty DEST), so a DEST that already has BYTES bytes is overwritten in place (no cluster is
# allocated or freed; a cut spoils at most what was being written); another DEST is made through a temp file.
fixed_put() {
  fp_text=$(fixed_text "$1" "$2") || return 1
  if [ "$(stat -c %s "$3" 2>/dev/null)" = "$2" ]; then
    printf '%s\n' "$fp_text" | dd of="$3" bs="$2" count=1 conv=notrunc,fsync iflag=fullblock status=none || return 1
  else
    durable_text "$fp_text" "$3"
  fi
}

# Run a command that changes the system (hostname, useradd, nft, systemctl, the K3s installer...).
sys() {
  if [ -n "${EDGEFORGE_SYS:-}" ]; then
    "$EDGEFORGE_SYS" "$@"
  else
    "$@"
  fi
}

# Is a command available? With EDGEFORGE_SYS set the wrapper answers for system commands.
have() {
  [ -n "${EDGEFORGE_SYS:-}" ] || command -v "$1" >/dev/null 2>&1
}

sha_of() {
  sha256sum "$1" | cut -d ' ' -f 1
}

# put_file SRC DEST MODE: copy atomically (temp file + rename) unless DEST already holds the same bytes.
# Sets CHANGED=1 when it wrote.
put_file() {
  CHANGED=0
  [ -f "$1" ] || die "missing bundle file $1"
  if [ -f "$2" ] && cmp -s "$1" "$2"; then
    chmod "$3" "$2" || die "cannot chmod $2"
    return 0
  fi
  mkdir -p "${2%/*}" || die "cannot create ${2%/*}"
  cp "$1" "$2.edgeforge-new" || die "cannot write $2"
  chmod "$3" "$2.edgeforge-new" || die "cannot chmod $2"
  # a power cut leaves the old file or the new one (never half of it): fsync, rename, fsync the directory
  flush "$2.edgeforge-new"
  mv -f "$2.edgeforge-new" "$2" || die "cannot replace $2"
  flush "${2%/*}"
  CHANGED=1
  log "wrote ${2#"$R"}"
}

# put_text TEXT DEST MODE: like put_file for a short text (a newline is added).
put_text() {
  mkdir -p "$STATE/tmp" || die "cannot create $STATE/tmp"
  printf '%s\n' "$1" >"$STATE/tmp/put_text" || die "cannot write $STATE/tmp/put_text"
  put_file "$STATE/tmp/put_text" "$2" "$3"
  rm -f "$STATE/tmp/put_text"
}

# install_timer_job SRC PROGRAM SERVICE TIMER MESSAGE: a periodic job from the bundle directory SRC (files named
# as on the device): the program and its two units put in place; the timer reloaded, enabled and started when a
# unit changed or it never was; MESSAGE logged then. Idempotent.
install_timer_job() {
  itj_units=0
  put_file "$1/${2##*/}" "$R$2" 0755
  put_file "$1/${3##*/}" "$R$3" 0644
  [ "$CHANGED" = 1 ] && itj_units=1
  put_file "$1/${4##*/}" "$R$4" 0644
  [ "$CHANGED" = 1 ] && itj_units=1
  itj_timer=${4##*/}
  if [ "$itj_units" = 1 ] || [ ! -f "$STATE/$itj_timer.enabled" ]; then
    sys systemctl daemon-reload || die "cannot reload systemd for $itj_timer"
    sys systemctl enable "$itj_timer" >/dev/null 2>&1 || die "cannot enable $itj_timer"
    sys systemctl restart "$itj_timer" || die "cannot start $itj_timer"
    : >"$STATE/$itj_timer.enabled"
    log "$5"
  fi
}

# the pinned sha256 of a file, or die naming both sums (permanent: the same bytes give the same sum again)
check_sha() {
  [ -f "$1" ] || die "$2: $1 is missing"
  got_sha=$(sha_of "$1")
  [ "$got_sha" = "$3" ] || die_permanent "$2: $1 has sha256 $got_sha but edgeforge pinned $3; refusing to use it (re-download it, or fix the pin in the inventory and rebuild)"
}
