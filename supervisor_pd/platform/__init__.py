"""Host discovery: NPUs, device IPs, A2/A3, NUMA and the container's CPU set, as plain facts."""
