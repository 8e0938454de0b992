#!/bin/bash
# Container entrypoint. Sources the CANN/MindIE environment scripts that exist, so their
# variables reach every child, then execs supervisor-pd, which becomes PID 1 and gets the signals.
#   entrypoint.sh [run options]      -> supervisor-pd run [run options]
#   entrypoint.sh COMMAND [ARGS...]  -> COMMAND ARGS... (e.g. supervisor-pd plan --dry-run)
# SUPERVISOR_PD_SET_ENV_SCRIPTS replaces the list of scripts (space-separated).
default_scripts="/usr/local/Ascend/ascend-toolkit/set_env.sh /usr/local/Ascend/nnal/atb/set_env.sh
/usr/local/Ascend/atb-models/set_env.sh /usr/local/Ascend/mindie/set_env.sh"
if [ -n "${MINDIE_LLM_HOME_PATH:-}" ]; then
    default_scripts="$default_scripts $MINDIE_LLM_HOME_PATH/set_env.sh"
fi
args=("$@")
# A sourced script sees the caller's positional parameters; ours are not meant for it.
set --
for script in ${SUPERVISOR_PD_SET_ENV_SCRIPTS:-$default_scripts}; do
    if [ -f "$script" ]; then
        # shellcheck source=/dev/null
        . "$script" || echo "entrypoint.sh: $script returned $?; continuing" >&2
    fi
done
if [ "${#args[@]}" -eq 0 ] || [ "${args[0]#-}" != "${args[0]}" ]; then
    exec supervisor-pd run "${args[@]}"
fi
exec "${args[@]}"
