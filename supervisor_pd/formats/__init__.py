"""Pydantic models for every file format supervisor_pd reads or writes.

Models for MindIE's own files keep fields they do not declare (``extra="allow"``) so a read,
modify, write cycle leaves the rest of a user's file untouched.
"""
