"""Planning: a pure function of host facts, input configs and settings that returns a Plan."""
