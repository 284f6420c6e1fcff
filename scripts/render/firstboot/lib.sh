# shellcheck shell=sh
# edgeforge first-boot program: its own state, after the shell core (scripts/render/shell/core.sh).
#
# The step journal: $JOURNAL/STEP holds the bundle hash STEP finished for, written durably (temp file, fsync,
# rename, fsync the directory) as the last thing the step does; a step is skipped when its entry names this
# bundle, so after a power cut or a failure the program resumes at the first unfinished step. A new bundle
# (provision) runs every step again (each is idempotent).
# The status file ($FBSTATE, key=value lines): where the program stands, for `edgeforge-firstboot status`,
# `edgeforge provision` and the fleet-status reporter.

STEP=start
STEPS_DONE=
JOURNAL="$R$EF_FIRSTBOOT_JOURNAL"
FBSTATE="$R$EF_STATUS_STATE"
BUNDLE_ID=

# First-boot milestones: `milestone running` as each step begins, `milestone failed MESSAGE`, `milestone done`.
# A no-op here; the status stage (scripts/render/status/) redefines it to start the status reporter.
# shellcheck disable=SC2317 # unreachable only when a stage's fragment redefines it
milestone() { :; }

# the hash of the bundle being applied (its SHA256SUMS): what journal entries are for
bundle_id() {
  [ -n "$BUNDLE_ID" ] || BUNDLE_ID=$(sha_of "$BUNDLE/SHA256SUMS" 2>/dev/null) || BUNDLE_ID=none
  printf '%s\n' "$BUNDLE_ID"
}

step_done() {
  [ -n "$BUNDLE_ID" ] || BUNDLE_ID=$(bundle_id)
  # (read, not $(cat): the journal is read ~10 times per step, and each fork costs on a slow board)
  sd_id=
  { IFS= read -r sd_id <"$JOURNAL/$1" || [ -n "$sd_id" ]; } 2>/dev/null || return 1
  [ "$sd_id" = "$BUNDLE_ID" ]
}

# a step the journal says is done is skipped; erase_secrets runs again when one-time secrets are back in the
# bundle (the same bundle delivered again by `provision` before first boot had finished)
step_skip() {
  step_done "$1" || return 1
  [ "$1" = erase_secrets ] || return 0
  for sk_f in "$BUNDLE"/secrets/* "$BUNDLE"/flux/*.yaml "$BUNDLE/sealed-secrets.jwe"; do
    [ ! -e "$sk_f" ] || return 1
  done
}

journal_done() {
  { mkdir -p "$JOURNAL" && durable_text "$(bundle_id)" "$JOURNAL/$1"; } || die "cannot record step $1 as done in $JOURNAL"
}

# the steps the journal says are done for this bundle, in order
journal_list() {
  for jl_s in $ALL_STEPS; do
    if step_done "$jl_s"; then printf '%s ' "$jl_s"; fi
  done
}

# the attempts made at step $1 since it last changed ("STEP N" in $JOURNAL/attempts), 0 when none
attempts_of() {
  at_line=
  { IFS= read -r at_line <"$JOURNAL/attempts" || [ -n "$at_line" ]; } 2>/dev/null || at_line=
  case $at_line in "$1 "*) echo "${at_line#"$1 "}" ;; *) echo 0 ;; esac
}

# fb_get KEY: a value of the status file
fb_get() {
  sed -n "s/^$1=//p" "$FBSTATE" 2>/dev/null | head -n 1
}

# status_write STATE [ERROR [RETRY [NEXT]]]: the status file, replaced whole (durable: a reader never sees half);
# readable by everyone (no secrets in it) so `edgeforge-firstboot status` works without sudo
status_write() {
  sw_err=$(printf '%s' "${2:-}" | tr '\n' ' ' | cut -c 1-400)
  mkdir -p "${FBSTATE%/*}" 2>/dev/null
  durable_text "step=$STEP
state=$1
at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
attempt=${ATTEMPT:-0}
retry=${3:-}
next=${4:-}
error=$sw_err
bundle=$(bundle_id)
steps=$(journal_list)" "$FBSTATE" 0644 ||
    log "warning: cannot write the status file $FBSTATE"
}

# called by die / die_permanent with the message (and "permanent"): count the attempt, record the failure
on_die() {
  od_kind=${2:-temporary}
  ATTEMPT=$(($(attempts_of "$STEP") + 1))
  mkdir -p "$JOURNAL" 2>/dev/null && durable_text "$STEP $ATTEMPT" "$JOURNAL/attempts" 2>/dev/null
  status_write failed "$1" "$od_kind"
  milestone failed "$1"
  log "stopped at step '$STEP' (attempt $ATTEMPT, $od_kind); steps done: ${STEPS_DONE:-none}. $([ "$od_kind" = permanent ] &&
    echo "Trying again cannot fix this: fix the cause, then run '$EF_FIRSTBOOT_COMMAND retry'" ||
    echo "The first-boot service tries again by itself; by hand: $EF_FIRSTBOOT_COMMAND run")"
}

# backoff_delay N SEED: seconds to wait after the Nth failed attempt at a step. Capped exponential,
# BASE*2^(N-1) up to CAP (30 s .. 900 s), with "equal jitter": between half and all of it, picked from
# cksum(SEED:N) so it is deterministic per device (SEED: the device id) yet differs between devices, and a
# site's devices do not all knock on tang at the same second after an outage.
backoff_delay() {
  bd_base=30 bd_cap=900
  # test-only (docs/rendering.md): "BASE CAP" from EDGEFORGE_BACKOFF, the file EF_FIRSTBOOT_BACKOFF_TEST, or
  # edgeforge.test_backoff=BASE:CAP on the kernel command line (the qemu boot test passes it)
  bd_knob=${EDGEFORGE_BACKOFF:-$(cat "$R$EF_FIRSTBOOT_BACKOFF_TEST" 2>/dev/null || true)}
  if [ -z "$bd_knob" ]; then
    bd_arg=$(tr ' ' '\n' 2>/dev/null <"$R/proc/cmdline" | sed -n 's/^edgeforge\.test_backoff=\([0-9]*\):\([0-9]*\)$/\1 \2/p' | tail -n 1)
    bd_knob=$bd_arg
  fi
  case $bd_knob in
    [0-9]*' '[0-9]*) bd_base=${bd_knob%% *} bd_cap=${bd_knob##* } ;;
  esac
  bd_d=$bd_base bd_i=1
  while [ "$bd_i" -lt "$1" ] && [ "$bd_d" -lt "$bd_cap" ]; do bd_d=$((bd_d * 2)) bd_i=$((bd_i + 1)); done
  [ "$bd_d" -le "$bd_cap" ] || bd_d=$bd_cap
  bd_half=$((bd_d / 2))
  bd_sum=$(printf '%s:%s' "$2" "$1" | cksum | cut -d ' ' -f 1)
  echo $((bd_d - bd_half + bd_sum % (bd_half + 1)))
}

# `edgeforge-firstboot status`: where first boot stands, from the status file and the journal
fb_print_status() {
  if [ ! -f "$FBSTATE" ]; then
    echo "first boot of $EF_DEVICE_ID: not started (no $FBSTATE)"
    return 0
  fi
  ps_state=$(fb_get state) ps_step=$(fb_get step) ps_retry=$(fb_get retry) ps_next=$(fb_get next)
  case $ps_state in
    done) echo "first boot of $EF_DEVICE_ID: finished at $(fb_get at)" ;;
    running) echo "first boot of $EF_DEVICE_ID: running step $ps_step (attempt $(($(fb_get attempt) + 0)), since $(fb_get at))" ;;
    failed)
      if [ "$ps_retry" = permanent ]; then
        echo "first boot of $EF_DEVICE_ID: FAILED PERMANENTLY at step $ps_step (attempt $(fb_get attempt), $(fb_get at)); not retried"
        echo "  fix the cause, then: $EF_FIRSTBOOT_COMMAND retry"
      else
        echo "first boot of $EF_DEVICE_ID: waiting to retry step $ps_step (attempt $(fb_get attempt) failed at $(fb_get at))"
        [ -z "$ps_next" ] || echo "  next attempt: $ps_next"
      fi
      ;;
    *) echo "first boot of $EF_DEVICE_ID: $ps_state at step $ps_step" ;;
  esac
  [ -z "$(fb_get error)" ] || echo "  last error: $(fb_get error)"
  echo "  steps done: $(fb_get steps)"
  echo "  status file: ${FBSTATE#"$R"}; journal: journalctl -u $EF_FIRSTBOOT_UNIT (or ${LOG#"$R"})"
}
