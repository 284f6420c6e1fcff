#!/bin/sh
# edgeforge-status-report: publish this device's status, outbound only, to the fleet's MQTT broker
# (docs/status.md). Run by edgeforge-status.timer (one period apart, a fixed per-device offset) and at the
# first-boot program's milestones; no resident daemon. One JSON document, retained, MQTT v5 with a
# message expiry of two periods (a silent device's status expires instead of looking fresh), TLS with the
# broker's CA pinned, this device's own user and password (in the 0600 mosquitto_pub options file under
# beside the settings, never on the command line). Safe to run at any time, again and again.
#
# EDGEFORGE_ROOT=DIR reads every file under DIR (tests); EFS_CONF names the settings file.
set -u
R="${EDGEFORGE_ROOT:-}"
R="${R%/}"
CONF="${EFS_CONF:-$R$EF_STATUS_CONF}"
EFS_DEVICE='' EFS_FLEET='' EFS_SITE='' EFS_HOST='' EFS_PORT=8883 EFS_TOPIC='' EFS_EXPIRY=1800 EFS_ROLE=server
[ -f "$CONF" ] || { echo "edgeforge-status-report: $CONF is missing (written by the first-boot program)" >&2; exit 1; }
# shellcheck disable=SC1090
. "$CONF"
ETC="${CONF%/*}"
FBSTATE="$R$EF_STATUS_STATE"
WORK="$R$EF_STATUS_WORK"

say() { echo "edgeforge-status-report: $*" >&2; }

# a JSON string body: control characters dropped, at most 400 characters, \ and " escaped
js() {
  printf '%s' "$1" | tr -d '\000-\037' | cut -c 1-400 | sed 's/\\/\\\\/g; s/"/\\"/g'
}

# a value of the first-boot state file (key=value lines written by the first-boot program's milestones)
fb_get() {
  sed -n "s/^$1=//p" "$FBSTATE" 2>/dev/null | head -n 1
}

# ISO 8601 UTC of an openssl date ("Dec  2 03:01:00 2027 GMT"), empty when unknown
iso_date() {
  date -u -d "$1" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || true
}

# K3s answers only where it runs; a locked data volume or a device mid-first-boot says "unknown"
kubectl_get() {
  if [ -z "$R" ] && command -v k3s >/dev/null 2>&1 && [ -f /etc/rancher/k3s/k3s.yaml ]; then
    timeout 20 k3s kubectl "$@" 2>/dev/null || true
  fi
}

collect() {
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  fb_step=$(fb_get step)
  fb_state=$(fb_get state)
  fb_error=$(fb_get error)
  fb_at=$(fb_get at)
  # a failed step is retried by the first-boot service (temporary) or waits for a person (permanent)
  fb_retry=$(fb_get retry)
  fb_attempt=$(fb_get attempt)
  fb_next=$(fb_get next)
  case $fb_attempt in '' | *[!0-9]*) fb_attempt=0 ;; esac
  applied_sha=''
  applied_at=''
  if [ -f "$R$EF_APPLIED_FILE" ]; then
    applied_sha=$(sed -n 's/.*"bundleSha256":"\([0-9a-f]*\)".*/\1/p' "$R$EF_APPLIED_FILE")
    applied_at=$(sed -n 's/.*"appliedAt":"\([^"]*\)".*/\1/p' "$R$EF_APPLIED_FILE")
    # a device set up before milestones existed: its applied.json is the proof first boot ended
    if [ -z "$fb_state" ]; then fb_step=record fb_state='done' fb_at=$applied_at; fi
  fi
  [ -n "$fb_state" ] || { fb_step=none; fb_state=pending; }

  k3s_version=unknown
  if [ -z "$R" ] && command -v k3s >/dev/null 2>&1; then
    k3s_version=$(timeout 20 k3s --version 2>/dev/null | sed -n '1s/^k3s version \([^ ]*\).*/\1/p')
    [ -n "$k3s_version" ] || k3s_version=unknown
  fi
  git_revision=$(kubectl_get -n flux-system get kustomizations.kustomize.toolkit.fluxcd.io flux-system -o 'jsonpath={.status.lastAppliedRevision}')
  flux_ready=$(kubectl_get -n flux-system get kustomizations.kustomize.toolkit.fluxcd.io flux-system -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')
  case $flux_ready in True) flux_ready=true ;; False) flux_ready=false ;; *) flux_ready=unknown ;; esac
  [ -n "$git_revision" ] || git_revision=unknown

  cert_not_after=''
  if [ "$EFS_ROLE" = agent ]; then cert="$R$EF_K3S_STATE_DIR/k3s/agent/serving-kubelet.crt"; else cert="$R$EF_K3S_STATE_DIR/k3s/server/tls/serving-kube-apiserver.crt"; fi
  if [ -f "$cert" ] && command -v openssl >/dev/null 2>&1; then
    cert_not_after=$(iso_date "$(openssl x509 -enddate -noout -in "$cert" 2>/dev/null | sed 's/^notAfter=//')")
  fi

  # the unlock service's own words (scripts/render/encryption/sh/unlock-data.sh)
  dv_status="${EFS_VOLUME_STATUS:-$R$EF_DATA_STATUS}"
  dv_detail=''
  dv_since=''
  if [ -f "$dv_status" ]; then
    dv_state=locked
    dv_detail=$(head -n 1 "$dv_status")
    dv_since=$(printf '%s' "$dv_detail" | sed -n 's/^locked since \([^;]*\).*/\1/p')
  elif [ -e "$R/dev/mapper/$EF_DATA_NAME" ]; then
    dv_state=unlocked
  elif [ ! -f "$R$EF_DATA_CONF" ]; then
    dv_state=none
  else
    dv_state=unknown
  fi

  free_mib=$(df -Pk "$R/" 2>/dev/null | awk 'NR == 2 { printf "%d", $4 / 1024 }')
  [ -n "$free_mib" ] || free_mib=-1
  uptime_s=$(cut -d . -f 1 /proc/uptime 2>/dev/null)
  [ -n "$uptime_s" ] || uptime_s=-1
  last_error=$fb_error
  [ -n "$last_error" ] || [ "$dv_state" != locked ] || last_error=$dv_detail
  mem_prev=$(cat "$WORK/memory-peak-kib" 2>/dev/null || true)
  case $mem_prev in '' | *[!0-9]*) mem_prev=null ;; esac

  printf '{"format":"edgeforge-status/1","device":"%s","fleet":"%s","site":"%s","time":"%s","firstboot":{"step":"%s","state":"%s","at":"%s","error":"%s","retry":"%s","attempt":%s,"next":"%s"},"lastError":"%s","applied":{"bundleSha256":"%s","at":"%s"},"gitops":{"revision":"%s","ready":"%s"},"k3s":{"version":"%s","certNotAfter":"%s"},"dataVolume":{"state":"%s","since":"%s","detail":"%s"},"disk":{"freeMiB":%s},"uptimeSec":%s,"reporter":{"memoryPeakKiB":%s}}\n' \
    "$(js "$EFS_DEVICE")" "$(js "$EFS_FLEET")" "$(js "$EFS_SITE")" "$now" \
    "$(js "$fb_step")" "$(js "$fb_state")" "$(js "$fb_at")" "$(js "$fb_error")" "$(js "$fb_retry")" "$fb_attempt" "$(js "$fb_next")" "$(js "$last_error")" \
    "$(js "$applied_sha")" "$(js "$applied_at")" "$(js "$git_revision")" "$flux_ready" \
    "$(js "$k3s_version")" "$cert_not_after" "$dv_state" "$(js "$dv_since")" "$(js "$dv_detail")" \
    "$free_mib" "$uptime_s" "$mem_prev"
}

publish() {
  # the options file (-u DEVICE / -P PASSWORD lines) is $XDG_CONFIG_HOME/mosquitto_pub: keeps the password off argv
  XDG_CONFIG_HOME="$ETC" timeout "${EFS_TIMEOUT:-60}" mosquitto_pub -V mqttv5 -h "$EFS_HOST" -p "$EFS_PORT" --cafile "$ETC/ca.pem" \
    -i "$EFS_DEVICE" -t "$EFS_TOPIC" -r -q 1 -D publish message-expiry-interval "$EFS_EXPIRY" -f "$WORK/report.json" 2>"$WORK/publish.err"
  pb_rc=$?
  cat "$WORK/publish.err" >&2
  [ "$pb_rc" = 0 ] || return "$pb_rc"
  # a PUBACK refusal (e.g. the ACL) is only a warning to mosquitto_pub, which still exits 0
  if grep -q 'failed' "$WORK/publish.err"; then return 3; fi
}

main() {
  umask 077
  mkdir -p "$WORK" || { say "cannot create $WORK"; exit 1; }
  command -v mosquitto_pub >/dev/null 2>&1 || { say "mosquitto_pub is not installed (package mosquitto-clients); no status can be sent"; exit 1; }
  # one report at a time: a milestone and the timer may start together; each sends the state it then reads
  exec 8>"$WORK/lock"
  if command -v flock >/dev/null 2>&1; then flock -w 90 8 || { say "another report holds $WORK/lock"; exit 1; }; fi
  n=0
  while :; do
    n=$((n + 1))
    seen=$(cat "$FBSTATE" 2>/dev/null || true)
    if ! collect >"$WORK/report.json.new" || ! mv -f "$WORK/report.json.new" "$WORK/report.json"; then say "cannot write $WORK/report.json"; exit 1; fi
    if publish; then
      rc=0
      say "sent status to $EFS_HOST:$EFS_PORT topic $EFS_TOPIC"
    else
      rc=$?
      say "could not send the status to $EFS_HOST:$EFS_PORT (exit $rc: network down, broker unreachable, or this device's credential refused); the next run sends the then-current state"
    fi
    # first boot moved on while we sent: send once more, so the retained status is the newest milestone
    if [ "$n" -ge 3 ] || [ "$rc" != 0 ] || [ "$(cat "$FBSTATE" 2>/dev/null || true)" = "$seen" ]; then break; fi
  done
  # this run's own peak memory (its systemd unit's cgroup), sent with the next report
  cg=$(sed -n 's/^0:://p' /proc/self/cgroup 2>/dev/null)
  if [ -z "$R" ] && [ -n "$cg" ] && [ -r "/sys/fs/cgroup$cg/memory.peak" ]; then
    cat "/sys/fs/cgroup$cg/memory.peak" >"$WORK/memory-peak-bytes" 2>/dev/null && echo $(($(cat "$WORK/memory-peak-bytes") / 1024)) >"$WORK/memory-peak-kib"
  fi
  return "$rc"
}

main "$@"
