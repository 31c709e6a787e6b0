"""Trajectory output that can be cut back to a checkpoint exactly.

Frames are written with OpenMM's XTCFile or DCDFile. After each frame the pair
(step, file size in bytes) is appended to ``<traj>.frames``; resuming from a checkpoint
at step S truncates the trajectory to the size recorded for the last frame with
step <= S, so a resumed run holds exactly the frames of an uninterrupted one.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
from openmm import app, unit

from solvmd.errors import SolvmdError


class TrajectoryWriter:
    """Append frames to ``path`` (.xtc or .dcd) and keep the frame index file in step."""

    def __init__(self, path: Path, topology: app.Topology, dt_ps: float, first_step: int, interval: int,
                 resume_step: int | None):
        self.path = Path(path)
        self.index_path = self.path.with_name(self.path.name + ".frames")
        self.topology = topology
        self.format = self.path.suffix.lstrip(".").lower()
        if self.format not in ("xtc", "dcd"):
            raise SolvmdError(f"trajectory format {self.format!r}: allowed are xtc, dcd")
        append = False
        if resume_step is not None and self.path.exists():
            append = self._truncate_to(resume_step) > 0
        elif self.path.exists():
            self.path.unlink()
            self.index_path.unlink(missing_ok=True)
        if not append:
            self.index_path.write_text("")
            self.path.unlink(missing_ok=True)
        dt = dt_ps * unit.picoseconds
        if self.format == "xtc":
            self._writer = app.XTCFile(str(self.path), topology, dt, first_step, interval, append=append)
            self._fh = None
        else:
            self._fh = open(self.path, "r+b" if append else "w+b")
            self._writer = app.DCDFile(self._fh, topology, dt, first_step, interval, append=append)

    @staticmethod
    def belongs_to_solvmd(path: Path) -> bool:
        return Path(str(path) + ".frames").exists()

    def frames(self) -> list[tuple[int, int]]:
        """(step, byte size after the frame) for every frame written so far."""
        return self.indexed_frames(self.path)

    @staticmethod
    def indexed_frames(path: Path) -> list[tuple[int, int]]:
        """(step, byte size) of every frame in the index of the trajectory ``path`` (none if no index)."""
        index = Path(str(path) + ".frames")
        try:
            text = index.read_text() if index.exists() else ""
            rows = [tuple(map(int, ln.split())) for ln in text.splitlines() if ln.strip()]
        except (UnicodeDecodeError, ValueError):
            rows = None
        if rows is None or any(len(r) != 2 or r[1] < 0 for r in rows):
            raise SolvmdError(f"{index}: the frame index of {path} is corrupt (expected lines 'step bytes'); "
                              "remove the MD folder's trajectory, its .frames index and checkpoints and rerun")
        return rows

    def _truncate_to(self, step: int) -> int:
        kept = [(s, b) for s, b in self.frames() if s <= step]
        size = kept[-1][1] if kept else 0
        if os.path.getsize(self.path) < size:
            raise SolvmdError(f"{self.path} is shorter than its frame index says; remove it and rerun")
        with open(self.path, "r+b") as fh:
            if self.format == "dcd" and kept and fh.read(8)[4:8] != b"CORD":
                raise SolvmdError(f"{self.path}: the DCD header is corrupt, so the run cannot continue this "
                                  "trajectory; remove the MD folder and rerun")
            fh.truncate(size)
            if self.format == "dcd" and kept:  # the header holds the frame count and last step
                fh.seek(8)
                fh.write(struct.pack("<i", len(kept)))
                fh.seek(20)
                fh.write(struct.pack("<i", kept[-1][0]))
        self.index_path.write_text("".join(f"{s} {b}\n" for s, b in kept))
        return len(kept)

    def write(self, step: int, positions_nm: np.ndarray, box_vectors) -> None:
        self._writer.writeModel(positions_nm * unit.nanometer, periodicBoxVectors=box_vectors)
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
        with open(self.index_path, "a") as idx:
            idx.write(f"{step} {os.path.getsize(self.path)}\n")
            idx.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
