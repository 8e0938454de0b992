"""Simulated MindIE controller."""
