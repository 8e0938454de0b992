"""Writing the plan's processes in another supervisor's format (`supervisor-pd export`)."""
