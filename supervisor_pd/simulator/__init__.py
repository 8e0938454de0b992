"""A faithful simulator of an Atlas 800I host and of the MindIE processes (see README.md here)."""
