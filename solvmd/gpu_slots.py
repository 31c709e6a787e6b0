"""One GPU per concurrent job on a workstation: a lock-file slot allocator.

Snakemake counts GPUs (``--resources gpu=N`` with ``resources: gpu=1`` on the MD rules)
but does not say *which* GPU a job may use (snakemake/snakemake#281). ``solvmd gpu-slot``
closes that gap: it takes an exclusive ``flock`` on one lock file per physical device,
exports the device's index as ``SOLVMD_CUDA_DEVICE`` (read by
:mod:`solvmd.md.platforms`) and ``exec``\\ s the job's command with the lock file still
open. The lock therefore lives exactly as long as the job's process: it is released by
the kernel when the process exits, however it exits (``kill -9`` included), and no stale
lock can be left behind.

Devices, first match wins:

1. an explicit list (``--devices 0,2``; physical CUDA indices);
2. ``CUDA_VISIBLE_DEVICES`` (set by SLURM for ``--gpus`` jobs; CUDA renumbers the
   visible devices 0..n-1, so the exported index is the position in that list while the
   lock is keyed by the listed device, so that jobs sharing a node never collide);
3. ``--count N`` (devices 0..N-1; the Snakefile passes Snakemake's ``--resources gpu=N``);
4. the number of GPUs ``nvidia-smi -L`` lists.

With no device at all the command runs unpinned (a warning is printed); whether that is
an error is the MD platform's decision (``md.platform``, ``md.allow_cpu_fallback``).

Usage::

    solvmd gpu-slot --count 2 -- solvmd md results/x/build -o results/x/md -p protocol.yaml

    with acquire_slot(["0", "1"]) as slot:   # in Python
        os.environ["SOLVMD_CUDA_DEVICE"] = str(slot.index)
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from solvmd.errors import SolvmdError
from solvmd.io import try_lock_file

ENV_DEVICE = "SOLVMD_CUDA_DEVICE"  # index handed to OpenMM's CUDA DeviceIndex
ENV_LOCK_DIR = "SOLVMD_GPU_LOCK_DIR"
ENV_DEVICES = "SOLVMD_GPU_DEVICES"  # comma list; same meaning as --devices


@dataclass(frozen=True)
class Slot:
    """A held GPU: ``index`` is what the job passes to CUDA, ``device`` the locked device id."""

    index: int
    device: str
    lock_path: Path
    fd: int


def default_lock_dir() -> Path:
    """``$SOLVMD_GPU_LOCK_DIR`` or ``<tmp>/solvmd-gpu-locks`` (one per machine, shared by all users)."""
    return Path(os.environ.get(ENV_LOCK_DIR) or Path(tempfile.gettempdir()) / "solvmd-gpu-locks")


def _nvidia_smi_count() -> int:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def resolve_devices(devices: Sequence[str] | None = None, count: int | None = None) -> list[tuple[int, str]]:
    """``[(index for CUDA, device id to lock), ...]`` by the precedence in the module docstring."""
    if devices is None and os.environ.get(ENV_DEVICES):
        devices = [d for d in os.environ[ENV_DEVICES].split(",") if d.strip()]
    if devices is not None:
        return [(int(d), str(d).strip()) for d in devices]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
        if count is not None:
            ids = ids[:count]
        return list(enumerate(ids))
    n = count if count is not None else _nvidia_smi_count()
    return [(i, str(i)) for i in range(n)]


def _lock_path(lock_dir: Path, device: str) -> Path:
    lock_dir.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(lock_dir, 0o1777)  # shared by every user of the machine (sticky, like /tmp)
    except PermissionError:
        pass
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in device)
    return lock_dir / f"gpu-{safe}.lock"


def try_acquire(devices: list[tuple[int, str]], lock_dir: Path | None = None) -> Slot | None:
    """Lock the first free device without waiting; ``None`` if all are taken."""
    lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    for index, device in devices:
        path = _lock_path(lock_dir, device)
        fd = try_lock_file(path)
        if fd is not None:
            return Slot(index, device, path, fd)
    return None


def acquire(devices: list[tuple[int, str]], lock_dir: Path | None = None, timeout_s: float | None = None,
            poll_s: float = 1.0, log=sys.stderr) -> Slot:
    """Lock a free device, waiting (polling every ``poll_s`` s) up to ``timeout_s`` s (None: forever)."""
    if not devices:
        raise SolvmdError("gpu-slot: no GPU devices to choose from")
    start = time.monotonic()
    announced = False
    while True:
        slot = try_acquire(devices, lock_dir)
        if slot is not None:
            return slot
        if timeout_s is not None and time.monotonic() - start >= timeout_s:
            raise SolvmdError(f"gpu-slot: all {len(devices)} GPU(s) {[d for _, d in devices]} stayed busy for "
                              f"{timeout_s:g} s (lock files in {lock_dir or default_lock_dir()})")
        if not announced:
            print(f"[gpu-slot] all {len(devices)} GPU(s) busy; waiting for one to free up", file=log, flush=True)
            announced = True
        time.sleep(poll_s)


def release(slot: Slot) -> None:
    """Give the device back (also happens by itself when the holding process exits)."""
    try:
        fcntl.flock(slot.fd, fcntl.LOCK_UN)
    finally:
        os.close(slot.fd)


@contextmanager
def acquire_slot(devices: Sequence[str] | None = None, count: int | None = None, lock_dir: Path | None = None,
                 timeout_s: float | None = None) -> Iterator[Slot]:
    """Context manager around :func:`acquire` / :func:`release` for in-process use."""
    slot = acquire(resolve_devices(devices, count), lock_dir, timeout_s)
    try:
        yield slot
    finally:
        release(slot)


def exec_with_slot(command: Sequence[str], devices: Sequence[str] | None = None, count: int | None = None,
                   lock_dir: Path | None = None, timeout_s: float | None = None, need: int = 1,
                   log=sys.stderr) -> None:
    """Hold a GPU, export ``SOLVMD_CUDA_DEVICE`` and replace this process by ``command``.

    The lock's file descriptor is inherited across ``exec``, so the job itself holds the
    GPU until it exits. ``need=0`` (a job that asked Snakemake for no GPU) runs the
    command as it is; without any device it runs unpinned. Never returns.
    """
    if not command:
        raise SolvmdError("gpu-slot: no command given (usage: solvmd gpu-slot [options] -- COMMAND ...)")
    if need > 1:
        raise SolvmdError(f"gpu-slot: a job gets one GPU; {need} were requested (multi-GPU runs are not supported)")
    env = dict(os.environ)
    found = resolve_devices(devices, count) if need > 0 else []
    if need <= 0:
        pass
    elif found:
        slot = acquire(found, lock_dir, timeout_s, log=log)
        os.set_inheritable(slot.fd, True)
        env[ENV_DEVICE] = str(slot.index)
        print(f"[gpu-slot] GPU {slot.device} (CUDA index {slot.index}) for pid {os.getpid()}; lock {slot.lock_path}",
              file=log, flush=True)
    else:
        env.pop(ENV_DEVICE, None)
        print("[gpu-slot] warning: no GPU found (no --devices/--count, CUDA_VISIBLE_DEVICES or nvidia-smi); "
              "running without a device pin", file=log, flush=True)
    try:
        os.execvpe(command[0], list(command), env)
    except OSError as err:
        raise SolvmdError(f"gpu-slot: cannot run {command[0]!r}: {err}") from None
