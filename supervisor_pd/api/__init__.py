"""supervisor_pd's one HTTP port: probes, status, metrics, the inference API and control."""
