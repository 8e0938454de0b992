"""Simulated MindIE Server (`mindieservice_daemon` / `mindie_llm_server`)."""
