"""One way for solvmd to talk: the standard ``logging`` module, under the ``solvmd`` logger.

Every layer logs to ``get_logger("build")``, ``get_logger("analysis")``... (children of
``solvmd``), with levels, so a user silences or captures them like any library's:
``logging.getLogger("solvmd").setLevel(logging.WARNING)``. Results that are computed but
should not be trusted as they are stay Python warnings (``AnalysisWarning``): they belong
to the call that produced them, are recorded in ``analysis.json`` and can be turned into
errors with a warnings filter.

Functions that take a ``log`` stream (``build_system(recipe, out, log=sys.stderr)``) send
their messages there through :func:`log_to`, formatted ``[build] message``.
Ground floor: imports nothing from solvmd.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

ROOT = "solvmd"


def get_logger(component: str) -> logging.Logger:
    """The logger of one component (``"build"``, ``"md"``, ``"analysis"``, ``"pmf"``)."""
    return logging.getLogger(f"{ROOT}.{component}")


class _TagFormatter(logging.Formatter):
    """``[component] message`` (``[build] wrote ...``), warnings and errors marked."""

    def format(self, record: logging.LogRecord) -> str:
        tag = record.name.removeprefix(f"{ROOT}.") if record.name != ROOT else ROOT
        level = "" if record.levelno <= logging.INFO else f"{record.levelname.lower()}: "
        return f"[{tag}] {level}{record.getMessage()}"


@contextmanager
def log_to(stream: TextIO | None, level: int = logging.INFO) -> Iterator[None]:
    """While inside, solvmd messages at ``level`` or above also go to ``stream`` (None: nowhere extra)."""
    logger = logging.getLogger(ROOT)
    if stream is None or _already_shown(logger, stream):
        yield
        return
    handler = logging.StreamHandler(stream)
    handler.setLevel(level)
    handler.setFormatter(_TagFormatter())
    old_level = logger.level
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _already_shown(logger: logging.Logger, stream: TextIO) -> bool:
    """True when a handler on the solvmd logger or, through propagation, the root logger
    already writes to ``stream`` (``configure`` or ``logging.basicConfig`` was called)."""
    handlers = list(logger.handlers) + (logging.getLogger().handlers if logger.propagate else [])
    return any(isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is stream for h in handlers)


def configure(verbosity: int = 0, stream: TextIO | None = None) -> None:
    """For command-line use: solvmd messages to ``stream`` (stderr), INFO by default, DEBUG with
    ``verbosity >= 1``, WARNING and above with ``verbosity < 0``."""
    logger = logging.getLogger(ROOT)
    level = logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_TagFormatter())
    logger.handlers = [handler]
    logger.setLevel(level)
    logger.propagate = False
