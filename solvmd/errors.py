"""Exception types: every user-facing failure is a SolvmdError with one clear message."""


class SolvmdError(Exception):
    """A user-facing error: the message names what is wrong and what is allowed."""


class SimulationError(SolvmdError):
    """MD blew up (NaN or exploding energy); the message names the stage and step."""
