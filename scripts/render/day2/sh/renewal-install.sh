# shellcheck shell=sh
# The renewal check's part of the first-boot program (composed after steps.sh): installs the program and its
# systemd units from the bundle and enables the timer. Called by step_record; idempotent (put_file).
renewal_install() {
  [ -f "$BUNDLE/renewal/edgeforge-cert-renewal" ] || return 0
  ri_units=0
  put_file "$BUNDLE/renewal/edgeforge-cert-renewal" "$R$EF_RENEWAL_PROGRAM" 0755
  put_file "$BUNDLE/renewal/edgeforge-cert-renewal.service" "$R$EF_RENEWAL_SERVICE" 0644
  [ "$CHANGED" = 1 ] && ri_units=1
  put_file "$BUNDLE/renewal/edgeforge-cert-renewal.timer" "$R$EF_RENEWAL_TIMER" 0644
  [ "$CHANGED" = 1 ] && ri_units=1
  if [ "$ri_units" = 1 ] || [ ! -f "$STATE/renewal-timer-enabled" ]; then
    sys systemctl daemon-reload || die "cannot reload systemd for edgeforge-cert-renewal.timer"
    sys systemctl enable edgeforge-cert-renewal.timer >/dev/null 2>&1 || die "cannot enable edgeforge-cert-renewal.timer"
    sys systemctl restart edgeforge-cert-renewal.timer || die "cannot start edgeforge-cert-renewal.timer"
    : >"$STATE/renewal-timer-enabled"
    log "certificate renewal check on: edgeforge-cert-renewal.timer (inside the maintenance window)"
  fi
}
