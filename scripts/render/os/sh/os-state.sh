# shellcheck shell=sh
# The OS-update state both slots share (docs/os-updates.md): which slot holds which release, the trial in progress,
# the last rollback. Two records on the shared FAT partition, EF_OS_STATE.0 and .1, each EF_OS_STATE_BYTES long:
# comment, SEQ='n', the EF_OS_STATE_KEYS as KEY='value' lines, SUM='sha256 of the lines above', comment padding.
# The current state is the valid record with the higher SEQ; a change overwrites the other one in place, so a power
# cut during a write leaves the record before it whole. The same format as stateRecord (render/os/slots.ts).
# After the shell core (fixed_put, die).

OS_STATE="$R$EF_OS_STATE"

# os_record FILE: the record's lines above its SUM line when the checksum holds; fails otherwise
os_record() {
  [ -f "$1" ] || return 1
  or_body=$(sed -n '/^SUM=/q;p' "$1")
  or_sum=$(sed -n "s/^SUM='\([0-9a-f]*\)'\$/\1/p" "$1" | head -n 1)
  [ -n "$or_sum" ] && [ "$(printf '%s\n' "$or_body" | sha256sum | cut -d ' ' -f 1)" = "$or_sum" ] || return 1
  printf '%s\n' "$or_body"
}

# reads both records once per program (a program's own writes keep it current)
os_state_load() {
  OS_CUR='' OS_CUR_SEQ=0 OS_CUR_REC=''
  for sl_i in 0 1; do
    sl_r=$(os_record "$OS_STATE.$sl_i") || continue
    sl_seq=$(printf '%s\n' "$sl_r" | sed -n "s/^SEQ='\([0-9][0-9]*\)'\$/\1/p")
    [ -n "$sl_seq" ] || continue
    if [ -z "$OS_CUR_REC" ] || [ "$sl_seq" -gt "$OS_CUR_SEQ" ]; then OS_CUR=$sl_r OS_CUR_SEQ=$sl_seq OS_CUR_REC=$sl_i; fi
  done
  # a card made before the records kept one file (replaced by renames): read until the first change writes a record
  if [ -z "$OS_CUR_REC" ] && [ -f "$OS_STATE" ]; then OS_CUR=$(grep "^[A-Z_]*=" "$OS_STATE"); fi
  OS_LOADED=1
}

# os_state KEY: its value in the current record; empty when absent (or when no record is readable)
os_state() {
  [ -n "${OS_LOADED:-}" ] || os_state_load
  printf '%s\n' "$OS_CUR" | sed -n "s/^$1=//p" | tail -n 1 | sed "s/^'\(.*\)'\$/\1/"
}

# os_state_set KEY=VALUE...: a new record (the others' values kept) over the older one; values are printable ASCII
# without quotes, at most 240 bytes each
os_state_set() {
  [ -n "${OS_LOADED:-}" ] || os_state_load
  mkdir -p "${OS_STATE%/*}" || die "cannot create ${OS_STATE%/*}"
  ss_seq=$((OS_CUR_SEQ + 1))
  if [ "$OS_CUR_REC" = 0 ]; then ss_to=1; else ss_to=0; fi
  ss_body=$(
    echo '# edgeforge OS updates: which slot holds which release, the trial in progress, the last rollback'
    echo "SEQ='$ss_seq'"
    for ss_k in $EF_OS_STATE_KEYS; do
      ss_v=$(os_state "$ss_k")
      for ss_a; do case $ss_a in "$ss_k="*) ss_v=${ss_a#*=} ;; esac; done
      printf "%s='%s'\n" "$ss_k" "$(printf '%s' "$ss_v" | tr -cd ' -&(-~' | cut -c 1-240)"
    done
  )
  ss_sum=$(printf '%s\n' "$ss_body" | sha256sum | cut -d ' ' -f 1)
  fixed_put "$ss_body
SUM='$ss_sum'
" "$EF_OS_STATE_BYTES" "$OS_STATE.$ss_to" || die "cannot write the OS state record $OS_STATE.$ss_to"
  OS_CUR=$ss_body OS_CUR_SEQ=$ss_seq OS_CUR_REC=$ss_to
}

# the current record, for a person (edgeforge-os-update state)
os_state_print() {
  os_state_load
  if [ -n "$OS_CUR_REC" ]; then
    printf '%s\n' "$OS_CUR" | grep -v '^#'
    echo "# from $EF_OS_STATE.$OS_CUR_REC"
  elif [ -n "$OS_CUR" ]; then
    printf '%s\n' "$OS_CUR"
    echo "# from $EF_OS_STATE (a card made before the two records)"
  else
    echo "no readable OS state record at $EF_OS_STATE.0 or .1" >&2
    return 1
  fi
}
