"""supervisor_pd: run MindIE prefill/decode disaggregated serving in one container."""

__version__ = "0.1.0"
