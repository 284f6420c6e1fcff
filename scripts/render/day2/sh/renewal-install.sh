# shellcheck shell=sh
# The renewal check's part of the first-boot program (composed after steps.sh): installs the program and its
# systemd units from the bundle and enables the timer. Called by step_record; idempotent (put_file).
renewal_install() {
  [ -f "$BUNDLE/renewal/edgeforge-cert-renewal" ] || return 0
  install_timer_job "$BUNDLE/renewal" "$EF_RENEWAL_PROGRAM" "$EF_RENEWAL_SERVICE" "$EF_RENEWAL_TIMER" \
    "certificate renewal check on: edgeforge-cert-renewal.timer (inside the maintenance window)"
}
