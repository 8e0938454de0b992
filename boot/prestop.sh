#!/bin/sh
# preStop hook: let the Service's endpoints drop this pod, then drain and wait for the stop.
#   prestop.sh [delay_s=5]
# During the delay the pod still serves; the drain then refuses new requests (503 + Retry-After),
# lets those in flight finish and stops every process in order. The SIGTERM Kubernetes sends
# after this hook finds the drain already under way and leaves it alone.
delay="${1:-5}"
case "$delay" in *[!0-9]*|"") echo "prestop.sh: delay must be whole seconds, not '$delay'" >&2; exit 2 ;; esac
sleep "$delay"
exec supervisor-pd drain --wait
