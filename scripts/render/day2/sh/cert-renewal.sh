# shellcheck shell=sh
# edgeforge K3s certificate-renewal check (docs/day2.md#certificate-renewal). K3s renews its leaf
# certificates only when it starts within its renewal period of their expiry; a device that never restarts
# lets them lapse after a year. Run by edgeforge-cert-renewal.timer inside the maintenance window: reads
# every leaf certificate's expiry with openssl and restarts K3s when one has fewer than RENEW_DAYS left.
# CA certificates (*-ca.crt, 10 years) are reported, never a reason to restart: K3s does not renew them.
# Safe to interrupt and run again: it changes nothing but K3s's restart and its own state file.
STEP=cert-renewal

renewal_main() {
  have openssl || die "openssl is not installed: cannot read the K3s certificates' expiry"
  rn_secs=$((RENEW_DAYS * 86400))
  rn_n=0
  rn_soon=0
  rn_first=
  rn_first_end=
  rn_first_epoch=
  rn_ca_end=
  for rn_sub in $EF_RENEWAL_CERT_DIRS; do
    rn_dir="$R$EF_K3S_STATE_DIR/$rn_sub"
    [ -d "$rn_dir" ] || continue
    for rn_crt in "$rn_dir"/*.crt "$rn_dir"/*/*.crt; do
      [ -f "$rn_crt" ] || continue
      if ! rn_end=$(openssl x509 -in "$rn_crt" -noout -enddate 2>/dev/null); then
        log "warning: cannot read ${rn_crt#"$R"} as a certificate; skipped"
        continue
      fi
      rn_end=${rn_end#notAfter=}
      case ${rn_crt##*/} in
        *-ca.crt)
          rn_ca_end=$rn_end
          continue
          ;;
      esac
      rn_n=$((rn_n + 1))
      rn_epoch=$(date -u -d "$rn_end" +%s 2>/dev/null || echo 0)
      if [ -z "$rn_first_epoch" ] || [ "$rn_epoch" -lt "$rn_first_epoch" ]; then
        rn_first_epoch=$rn_epoch
        rn_first=${rn_crt#"$R"}
        rn_first_end=$rn_end
      fi
      # -checkend N: exit status 1 when the certificate expires within N seconds
      if ! openssl x509 -in "$rn_crt" -noout -checkend "$rn_secs" >/dev/null 2>&1; then
        rn_soon=$((rn_soon + 1))
        log "${rn_crt#"$R"} expires $rn_end: fewer than $RENEW_DAYS days left"
      fi
    done
  done
  rn_restarted=no
  if [ "$rn_n" = 0 ]; then
    log "no K3s leaf certificates under $R$EF_K3S_STATE_DIR ($EF_RENEWAL_CERT_DIRS): K3s has not started yet; nothing to do"
  elif [ "$rn_soon" -gt 0 ]; then
    log "$rn_soon of $rn_n K3s certificate(s) expire within $RENEW_DAYS days (soonest: $rn_first, $rn_first_end): restarting $RENEW_SERVICE so K3s renews them"
    sys systemctl restart "$RENEW_SERVICE" || die "cannot restart $RENEW_SERVICE: journalctl -u $RENEW_SERVICE; the certificates will lapse on $rn_first_end"
    rn_restarted=yes
    log "restarted $RENEW_SERVICE"
  else
    log "all $rn_n K3s certificate(s) valid for more than $RENEW_DAYS days (soonest: $rn_first, $rn_first_end); nothing to do"
  fi
  [ -n "$rn_ca_end" ] && log "K3s CA certificates expire $rn_ca_end (not renewed by a restart; see docs/day2.md)"
  mkdir -p "${R}${EF_RENEWAL_STATE%/*}" || die "cannot create ${EF_RENEWAL_STATE%/*}"
  if ! { printf 'checked=%s\nsoon=%s\nsoonest=%s\nsoonestExpiry=%s\nrestarted=%s\nat=%s\n' "$rn_n" "$rn_soon" "$rn_first" "$rn_first_end" "$rn_restarted" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$R$EF_RENEWAL_STATE.new" &&
    mv -f "$R$EF_RENEWAL_STATE.new" "$R$EF_RENEWAL_STATE"; }; then
    die "cannot write $R$EF_RENEWAL_STATE"
  fi
}

renewal_main "$@"
