# shellcheck shell=sh
# The status stage's part of the first-boot program (composed after steps.sh, before main.sh): it redefines
# `milestone` (a no-op in lib.sh) to start the status reporter, which sends the first-boot status file
# (EF_STATUS_STATE; the first-boot program writes it before each milestone: firstboot/lib.sh status_write). The reporter is installed at the first milestone after preflight, so a dry run
# (EDGEFORGE_STEPS=preflight) changes nothing and an unverified bundle installs nothing.
MS_BUSY=0
MS_INSTALLED=0

milestone() {
  [ "$MS_BUSY" = 0 ] || return 0
  case " ${EDGEFORGE_STEPS:-all} " in " preflight ") return 0 ;; esac
  MS_BUSY=1
  ms_changed=$CHANGED
  if [ "$MS_INSTALLED" = 0 ] && [ "$STEP" != preflight ] && [ -f "$BUNDLE/status/status.conf" ]; then
    status_install
    MS_INSTALLED=1
  fi
  if [ "$MS_INSTALLED" = 1 ]; then
    # --no-block: first boot never waits for the network or the broker; the report runs beside it
    sys systemctl start --no-block edgeforge-status.service >/dev/null 2>&1 || log "warning: cannot start edgeforge-status.service (the timer reports later)"
  fi
  CHANGED=$ms_changed
  MS_BUSY=0
}

# the reporter, its settings, the broker CA and this device's broker credential (0600, root filesystem:
# not a one-time secret, so a device whose data volume is locked can still say so)
status_install() {
  have mosquitto_pub || log "WARNING: mosquitto_pub is not installed (package mosquitto-clients, required by the base-image profiles): this device cannot report its status until it is"
  si_dir="$R$EF_STATUS_DIR"
  mkdir -p "$si_dir" || die "cannot create $si_dir"
  chmod 0700 "$si_dir" || die "cannot chmod $si_dir"
  si_units=0
  put_file "$BUNDLE/status/status.conf" "$si_dir/status.conf" 0644
  put_file "$BUNDLE/status/ca.pem" "$si_dir/ca.pem" 0644
  put_file "$BUNDLE/status/mosquitto_pub" "$si_dir/mosquitto_pub" 0600
  put_file "$BUNDLE/status/edgeforge-status-report" "$R$EF_STATUS_PROGRAM" 0755
  put_file "$BUNDLE/status/edgeforge-status.service" "$R$EF_STATUS_SERVICE" 0644
  [ "$CHANGED" = 1 ] && si_units=1
  put_file "$BUNDLE/status/edgeforge-status.timer" "$R$EF_STATUS_TIMER" 0644
  [ "$CHANGED" = 1 ] && si_units=1
  if [ "$si_units" = 1 ] || [ ! -f "$STATE/status-timer-enabled" ]; then
    sys systemctl daemon-reload || die "cannot reload systemd for edgeforge-status.service"
    sys systemctl enable edgeforge-status.timer >/dev/null 2>&1 || die "cannot enable edgeforge-status.timer"
    sys systemctl restart edgeforge-status.timer || die "cannot start edgeforge-status.timer"
    : >"$STATE/status-timer-enabled"
    log "status reporting on: edgeforge-status.timer sends this device's status to the fleet broker"
  fi
}
