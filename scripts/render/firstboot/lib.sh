# shellcheck shell=sh
# edgeforge first-boot program: its own state, after the shell core (scripts/render/shell/core.sh).

STEP=start
STEPS_DONE=

# called by die: where the program stopped and how to resume
on_die() {
  log "stopped at step '$STEP'; steps done: ${STEPS_DONE:-none}. Fix the cause, then run the program again (it is safe to re-run): sh $BUNDLE/firstboot.sh"
}
