"""Checksummed MD checkpoints: the newest two per stage, verified before loading.

``<stage>.chk`` holds one header line ``SOLVMD-CHECKPOINT 1 <step> <sha256> <n_bytes>``
followed by the bytes of ``Context.createCheckpoint()`` (positions, velocities, box,
step count, the integrator's random state; OpenMM 8.6 does not store the Monte-Carlo
barostat's random stream, so after a resume an NPT stage is a new sample, measured in
tests/test_opencl.py, on the CPU platform too). A save moves the current file to
``<stage>.prev.chk`` and writes the new one atomically, so at any moment of a kill at
least one complete checkpoint exists. Loading checks the size and the checksum; a
truncated, empty or corrupt newest file is reported and the previous one is used.
"""

from __future__ import annotations

import hashlib
import os
from typing import Callable
from dataclasses import dataclass
from pathlib import Path

from solvmd.errors import SolvmdError
from solvmd.io import atomic_path
from solvmd.records import checkpoint_name

MAGIC = b"SOLVMD-CHECKPOINT 1"


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: the stage it belongs to, its step and its payload bytes."""

    stage: str
    step: int
    path: Path
    payload: bytes


def checkpoint_paths(out_dir: Path, stage: str) -> tuple[Path, Path]:
    """(newest, previous) checkpoint files of ``stage`` in ``out_dir``."""
    newest = out_dir / checkpoint_name(stage)
    return newest, newest.with_suffix(".prev.chk")


def save_checkpoint(out_dir: Path, stage: str, step: int, payload: bytes) -> Path:
    """Write ``payload`` (Context.createCheckpoint()) as the newest checkpoint of ``stage``."""
    newest, previous = checkpoint_paths(out_dir, stage)
    digest = hashlib.sha256(payload).hexdigest()
    header = MAGIC + f" {step} {digest} {len(payload)}\n".encode()
    if newest.exists() and read_checkpoint(newest, stage) is not None:
        os.replace(newest, previous)
    with atomic_path(newest) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(header + payload)
            fh.flush()
            os.fsync(fh.fileno())
    return newest


def read_checkpoint(path: Path, stage: str, report: Callable[[str], None] | None = None) -> Checkpoint | None:
    """The checkpoint in ``path`` if it is complete and its checksum matches, else None
    (a damaged existing file is described through ``report``)."""
    why = _problem(path)
    if why is None:
        header, payload = path.read_bytes().split(b"\n", 1)
        return Checkpoint(stage, int(header.split()[2]), path, payload)
    if report is not None and path.exists():
        report(f"{path.name}: {why}; not used")
    return None


def _problem(path: Path) -> str | None:
    """Why ``path`` is not a usable checkpoint (None when it is)."""
    if not path.is_file():
        return "missing"
    data = path.read_bytes()
    if not data:
        return "empty file"
    header, sep, payload = data.partition(b"\n")
    fields = header.split()
    if not sep or not header.startswith(MAGIC) or len(fields) != 5:
        return "not a solvmd checkpoint (bad header)"
    _, _, step, digest, size = fields
    if not step.isdigit() or not size.isdigit():
        return "bad header numbers"
    if len(payload) != int(size):
        return f"truncated: {len(payload)} of {int(size)} bytes"
    if hashlib.sha256(payload).hexdigest() != digest.decode():
        return "checksum mismatch (corrupt)"
    return None


def latest_checkpoint(out_dir: Path, stages: list[str],
                      report: Callable[[str], None] | None = None) -> Checkpoint | None:
    """The newest valid checkpoint over ``stages`` (in run order), falling back to the
    previous one of a stage whose newest file is damaged. Raises when checkpoint files
    exist but none of them is usable (resuming from scratch would silently lose work)."""
    found = []
    for stage in stages:
        for path in checkpoint_paths(out_dir, stage):
            chk = read_checkpoint(path, stage, report)
            if chk is not None:
                found.append(chk)
                break
    if found:
        return max(found, key=lambda c: (stages.index(c.stage), c.step))
    damaged = [p for s in stages for p in checkpoint_paths(out_dir, s) if p.exists()]
    if damaged:
        raise SolvmdError(f"{out_dir}: no usable checkpoint ({', '.join(p.name for p in damaged)} are damaged); "
                          "delete the folder's *.chk files and rerun to start over")
    return None
