"""Simulated MindIE coordinator."""
