#!/bin/sh
# Drop-in for MindIE's probe.sh: existing manifests keep their exec probes.
#   probe.sh <startup|readiness|liveness> [timeout_s=1] [retries=0] [single_container]
# Arguments may come in any order; `single_container` (the only mode supervisor_pd runs) is
# accepted and ignored, so the reference manifest's `probe.sh readiness single_container` works.
usage="usage: probe.sh <startup|readiness|liveness> [timeout_s] [retries] [single_container]"
kind="" timeout="" retries=""
for arg in "$@"; do
    case "$arg" in
        startup|readiness|liveness) kind="$arg" ;;
        *single_container*) ;;
        *[!0-9]*|"") printf "probe.sh: unexpected argument '%s'\n%s\n" "$arg" "$usage" >&2; exit 2 ;;
        *) if [ -z "$timeout" ]; then timeout="$arg"; elif [ -z "$retries" ]; then retries="$arg"; fi ;;
    esac
done
if [ -z "$kind" ]; then
    echo "$usage" >&2
    exit 2
fi
[ "${timeout:-1}" -ge 1 ] 2>/dev/null || timeout=1
exec supervisor-pd probe "$kind" --timeout "${timeout:-1}" --retries "${retries:-0}"
