"""The runtime: start, watch, restart and stop the planned processes (`supervisor-pd run`)."""
