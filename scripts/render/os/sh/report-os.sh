# shellcheck shell=sh
# OS updates' part of the status reporter (composed into edgeforge-status-report on devices with A/B slots, after
# its collect() is renamed collect_status): the report gains "os" — the running slot and its release, each slot's
# release, a trial in progress, the last rollback (docs/os-updates.md). Read from the shared boot partition
# (os-state.sh, included before this file).

ro_get() {
  os_state "$1"
}

os_json() {
  # once, here: every ro_get below runs in a subshell
  os_state_load
  ro_slot=$(tr ' ' '\n' <"$R/proc/cmdline" 2>/dev/null | sed -n 's/^rauc\.slot=//p' | tail -n 1)
  ro_count=$(ro_get ROLLBACK_COUNT)
  case $ro_count in '' | *[!0-9]*) ro_count=0 ;; esac
  printf '"os":{"slot":"%s","version":"%s","slots":{"A":"%s","B":"%s"},"trial":{"slot":"%s","version":"%s","at":"%s"},"rollback":{"version":"%s","at":"%s","count":%s,"reason":"%s"},"note":"%s"}' \
    "$(js "$ro_slot")" "$(js "$(ro_get "${ro_slot:-none}_VERSION")")" "$(js "$(ro_get A_VERSION)")" "$(js "$(ro_get B_VERSION)")" \
    "$(js "$(ro_get TRIAL)")" "$(js "$(ro_get TRIAL_VERSION)")" "$(js "$(ro_get TRIAL_AT)")" \
    "$(js "$(ro_get ROLLBACK_VERSION)")" "$(js "$(ro_get ROLLBACK_AT)")" "$ro_count" "$(js "$(ro_get ROLLBACK_REASON)")" "$(js "$(ro_get NOTE)")"
}

collect() {
  ro_base=$(collect_status) || return 1
  printf '%s,%s}\n' "${ro_base%\}}" "$(os_json)"
}
