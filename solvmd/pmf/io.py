"""Atomic file writes and OpenMM XML round trips for the PMF step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openmm as mm

from solvmd.io import atomic_path, write_text_atomic


def atomic_write_text(path: str | Path, text: str) -> Path:
    write_text_atomic(path, text)
    return Path(path)


def atomic_savez(path: str | Path, **arrays) -> Path:
    """``np.savez`` to a temporary name in the same folder, then rename (never a half-written npz)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return Path(path)


def atomic_savefig(fig, path: str | Path, **kw) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", **kw)
    return Path(path)


def read_system(path_or_system) -> mm.System:
    if isinstance(path_or_system, mm.System):
        return mm.XmlSerializer.deserialize(mm.XmlSerializer.serialize(path_or_system))
    path = Path(path_or_system)
    if not path.is_file():
        raise FileNotFoundError(f"System XML {path} does not exist")
    return mm.XmlSerializer.deserialize(path.read_text())


def read_state(path_or_state) -> mm.State:
    if isinstance(path_or_state, mm.State):
        return path_or_state
    path = Path(path_or_state)
    if not path.is_file():
        raise FileNotFoundError(f"State XML {path} does not exist")
    return mm.XmlSerializer.deserialize(path.read_text())


def write_state(context: mm.Context, path: str | Path) -> Path:
    """Positions (unwrapped), velocities and box, atomically."""
    st = context.getState(getPositions=True, getVelocities=True)
    return atomic_write_text(path, mm.XmlSerializer.serialize(st))


def state_arrays(state: mm.State):
    """(positions nm (N,3), box nm (3,3) or None, velocities nm/ps or None) from a State."""
    pos = state.getPositions(asNumpy=True)._value
    try:
        box = state.getPeriodicBoxVectors(asNumpy=True)._value
    except Exception:
        box = None
    try:
        vel = state.getVelocities(asNumpy=True)._value
    except Exception:
        vel = None
    return np.asarray(pos, float), (None if box is None else np.asarray(box, float)), (
        None if vel is None else np.asarray(vel, float)
    )


def apply_state(context: mm.Context, state: mm.State, use_velocities: bool = True) -> bool:
    """Set box, positions (and velocities when present) without touching context parameters.

    ``Context.setState`` would also copy the MD run's global parameters (e.g. a barostat's
    pressure) and fail when the PMF context lacks them. Returns True when velocities were set.
    """
    pos, box, vel = state_arrays(state)
    if box is not None:
        context.setPeriodicBoxVectors(*box)
    context.setPositions(pos)
    if use_velocities and vel is not None:
        context.setVelocities(vel)
        return True
    return False
