# shellcheck shell=sh
# OS updates' part of the status reporter (composed into edgeforge-status-report on devices with A/B slots, after
# its collect() is renamed collect_status): the report gains "os" — the running slot and its release, each slot's
# release, a trial in progress, the last rollback (docs/os-updates.md). Read from the shared boot partition
# (os_state, from os-state.sh included before this file).

os_json() {
  # once, here: every os_state below runs in a subshell
  os_state_load
  ro_slot=$(tr ' ' '\n' <"$R/proc/cmdline" 2>/dev/null | sed -n 's/^rauc\.slot=//p' | tail -n 1)
  ro_count=$(os_state ROLLBACK_COUNT)
  case $ro_count in '' | *[!0-9]*) ro_count=0 ;; esac
  printf '"os":{"slot":"%s","version":"%s","slots":{"A":"%s","B":"%s"},"trial":{"slot":"%s","version":"%s","at":"%s"},"rollback":{"version":"%s","at":"%s","count":%s,"reason":"%s"},"note":"%s"}' \
    "$(js "$ro_slot")" "$(js "$(os_state "${ro_slot:-none}_VERSION")")" "$(js "$(os_state A_VERSION)")" "$(js "$(os_state B_VERSION)")" \
    "$(js "$(os_state TRIAL)")" "$(js "$(os_state TRIAL_VERSION)")" "$(js "$(os_state TRIAL_AT)")" \
    "$(js "$(os_state ROLLBACK_VERSION)")" "$(js "$(os_state ROLLBACK_AT)")" "$ro_count" "$(js "$(os_state ROLLBACK_REASON)")" "$(js "$(os_state NOTE)")"
}

collect() {
  ro_base=$(collect_status) || return 1
  printf '%s,%s}\n' "${ro_base%\}}" "$(os_json)"
}
