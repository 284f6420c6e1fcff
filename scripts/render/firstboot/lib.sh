# shellcheck shell=sh
# edgeforge first-boot program: its own state, after the shell core (scripts/render/shell/core.sh).

STEP=start
STEPS_DONE=

# First-boot milestones: `milestone running` as each step begins, `milestone failed MESSAGE`, `milestone done`.
# A no-op here; the status stage (scripts/render/status/) redefines it to record the state and report it.
# shellcheck disable=SC2317 # unreachable only when a stage's fragment redefines it
milestone() { :; }

# called by die with its message: report the failure, then where the program stopped and how to resume
on_die() {
  milestone failed "$*"
  log "stopped at step '$STEP'; steps done: ${STEPS_DONE:-none}. Fix the cause, then run the program again (it is safe to re-run): sh $BUNDLE/firstboot.sh"
}
