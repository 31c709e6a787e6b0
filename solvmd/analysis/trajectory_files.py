"""Structure checks of DCD and XTC files before MDAnalysis opens them.

MDAnalysis' compiled readers trust what a file says about itself: a DCD whose header is
corrupt surfaces as a Python traceback from the reader's teardown, a DCD whose Fortran record
markers are overwritten is read as garbage coordinates without complaint, and an XTC frame
whose header is garbage can make the C reader write past its buffer and abort the process.
So solvmd walks the file's own structure first (headers and record markers) and turns every
inconsistency into one :class:`~solvmd.errors.SolvmdError` that names the file, the frame and
what to do; an XTC file is also decoded once in a child process, where a crashing decoder
costs nothing but an error message.

:func:`quiet_reader_teardown` swallows the tracebacks MDAnalysis readers print from
``__del__`` after they failed to open a file (the failure itself is reported as one error).
"""

from __future__ import annotations

import contextlib
import gc
import os
import struct
import subprocess
import sys
from pathlib import Path

from solvmd.errors import SolvmdError

XTC_MAGIC = 1995
XTC_MAGICINTS = 73  # entries of the xdrfile decoder's magicints table (the size index must be below)
FIX = "rerun the MD step that wrote it (solvmd md resumes and rewrites it), or point the spec at an intact file"


def check_trajectory_file(path: str | Path, fmt: str | None = None) -> tuple[int, int] | None:
    """(whole frames, bytes they take) of the file's structure, or None for a format this module
    does not check; fewer bytes than the file has means it ends inside a frame (cut off).
    Raises SolvmdError naming ``path`` when a header, a frame header or a record marker is wrong."""
    path = Path(path)
    kind = (fmt or path.suffix.lstrip(".")).lower()
    if kind not in ("dcd", "xtc"):
        return None
    size = path.stat().st_size
    if size == 0:
        raise SolvmdError(f"trajectory: {path} is empty (0 bytes); {FIX}")
    with open(path, "rb") as fh:
        n, whole = _check_dcd(fh, size, path) if kind == "dcd" else _check_xtc(fh, size, path)
    if kind == "xtc":
        probe_xtc_frames(path)
    return n, whole


def cut_off_message(path: str | Path, frames: int, whole_bytes: int) -> str:
    """The error for a file that ends inside a frame (no record says how many it should hold)."""
    size = Path(path).stat().st_size
    return (f"trajectory: {path} ends inside frame {frames} ({size - whole_bytes} bytes of a cut-off frame after "
            f"{frames} whole frames): the file is truncated; rerun the MD step that wrote it, or keep the whole "
            f"frames by cutting the file to {whole_bytes} bytes (truncate -s {whole_bytes} FILE)")


def _bad(path: Path, what: str) -> SolvmdError:
    return SolvmdError(f"trajectory: {path} is not a readable {path.suffix.lstrip('.').upper() or 'trajectory'} "
                       f"file: {what}; {FIX}")


def _record(fh, path: Path, size: int, what: str, endian: str) -> bytes:
    """One Fortran record: int n, n bytes, int n."""
    head = fh.read(4)
    if len(head) < 4:
        raise _bad(path, f"{what}: file ends at byte {fh.tell()}")
    (n,) = struct.unpack(endian + "i", head)
    if n < 0 or fh.tell() + n + 4 > size:
        raise _bad(path, f"{what}: record marker {n} at byte {fh.tell() - 4} does not fit the file ({size} bytes)")
    data = fh.read(n)
    (tail,) = struct.unpack(endian + "i", fh.read(4))
    if tail != n:
        raise _bad(path, f"{what}: record markers {n} and {tail} differ (byte {fh.tell() - 4})")
    return data


def _check_dcd(fh, size: int, path: Path) -> tuple[int, int]:
    head = fh.read(8)
    if len(head) < 8:
        raise _bad(path, "header: the file is shorter than a DCD header")
    endian = next((e for e in "<>" if struct.unpack(e + "i", head[:4])[0] == 84), None)
    if endian is None or head[4:8] != b"CORD":
        raise _bad(path, f"header: the first record is not a DCD header (expected 84 + 'CORD', found "
                         f"{head[:4].hex()} + {head[4:8]!r})")
    fh.seek(0)
    icntrl = struct.unpack(endian + "20i", _record(fh, path, size, "header", endian)[4:84])
    n_fixed, has_cell, has_4d = icntrl[8], icntrl[10] != 0, icntrl[11] != 0
    _record(fh, path, size, "title block", endian)
    natoms_rec = _record(fh, path, size, "atom count", endian)
    if len(natoms_rec) != 4:
        raise _bad(path, f"atom count: record of {len(natoms_rec)} bytes, expected 4")
    (natoms,) = struct.unpack(endian + "i", natoms_rec)
    if natoms <= 0:
        raise _bad(path, f"header: atom count {natoms}")
    if n_fixed:
        return int(icntrl[0]), size  # fixed-atom DCDs (CHARMM) have a frame layout this check does not follow
    first = fh.tell()
    coord = 4 * natoms
    frame_bytes = (56 if has_cell else 0) + 3 * (coord + 8) + ((coord + 8) if has_4d else 0)
    body = size - first
    n_frames, rest = divmod(body, frame_bytes)
    for k in range(n_frames):
        fh.seek(first + k * frame_bytes)
        markers = ([48] if has_cell else []) + [coord] * (4 if has_4d else 3)
        for m in markers:
            (a,) = struct.unpack(endian + "i", fh.read(4))
            fh.seek(m, 1)
            (b,) = struct.unpack(endian + "i", fh.read(4))
            if a != m or b != m:
                raise _bad(path, f"frame {k}: record markers {a}/{b} where {m} was expected (byte "
                                 f"{fh.tell() - m - 8}): the frame is overwritten or the header's atom count "
                                 f"({natoms}) is wrong")
    return n_frames, first + n_frames * frame_bytes  # rest > 0: a cut-off last frame


def _check_xtc(fh, size: int, path: Path) -> tuple[int, int]:
    pos, k, natoms0 = 0, 0, None
    while pos < size:
        fh.seek(pos)
        head = fh.read(56)
        if len(head) < 56:
            return k, pos  # a cut-off last frame
        magic, natoms, _step = struct.unpack(">iii", head[:12])
        (natoms2,) = struct.unpack(">i", head[52:56])
        if magic != XTC_MAGIC:
            raise _bad(path, f"frame {k} (byte {pos}): magic number {magic}, expected {XTC_MAGIC}")
        if natoms <= 0 or natoms != natoms2 or (natoms0 is not None and natoms != natoms0):
            raise _bad(path, f"frame {k} (byte {pos}): atom counts {natoms}/{natoms2}"
                             + (f", the first frame has {natoms0}" if natoms0 is not None else ""))
        natoms0 = natoms
        if natoms <= 9:
            start, pos = pos, pos + 56 + 12 * natoms
            if pos > size:
                return k, start
            k += 1
            continue
        else:
            extra = fh.read(36)
            if len(extra) < 36:
                return k, pos
            precision, = struct.unpack(">f", extra[:4])
            minint, maxint = struct.unpack(">3i", extra[4:16]), struct.unpack(">3i", extra[16:28])
            smallidx, nbytes = struct.unpack(">2i", extra[28:36])
            if not (precision > 0 and precision < 1e12) or any(a > b for a, b in zip(minint, maxint)) \
                    or not 0 <= smallidx < XTC_MAGICINTS:
                raise _bad(path, f"frame {k} (byte {pos}): its compression header is garbage (precision "
                                 f"{precision:g}, ranges {minint}..{maxint}, size index {smallidx})")
            if nbytes < 0 or nbytes > 12 * natoms + 256:
                raise _bad(path, f"frame {k} (byte {pos}): compressed size {nbytes} bytes is impossible for "
                                 f"{natoms} atoms")
            start, pos = pos, pos + 92 + 4 * ((nbytes + 3) // 4)
        if pos > size:
            return k, start  # cut off inside the last frame
        k += 1
    return k, pos


_XTC_PROBE = """
import sys, warnings
warnings.simplefilter("ignore")
from MDAnalysis.lib.formats.libmdaxdr import XTCFile
with XTCFile(sys.argv[1]) as f:
    for k, _ in enumerate(f):
        print(k, flush=True)
"""


def probe_xtc_frames(path: str | Path, timeout_s: float = 3600.0) -> None:
    """Decode every frame of an XTC file in a child process first (about 0.7 s plus the decoding):
    garbage inside a frame's compressed coordinates can make the C decoder abort the whole
    process, which no exception handler can turn into an error message."""
    path = Path(path)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    try:
        proc = subprocess.run([sys.executable, "-c", _XTC_PROBE, str(path)], capture_output=True, text=True,
                              timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise SolvmdError(f"trajectory: {path}: reading its frames took longer than {timeout_s:g} s") from None
    if proc.returncode < 0:  # killed by a signal; a Python error (a cut-off frame) is reported in-process
        done = [ln for ln in proc.stdout.splitlines() if ln.strip().isdigit()]
        k = int(done[-1]) + 1 if done else 0
        where = f"frame {k}" + (f" (or frame {k - 1}, whose garbage it decoded)" if k else "")
        raise _bad(path, f"{where} cannot be decoded: the XTC decoder crashed (signal {-proc.returncode})")


@contextlib.contextmanager
def quiet_reader_teardown():
    """Within the block, exceptions raised by MDAnalysis readers' ``__del__`` (after they failed
    to open a file) are not printed; everything else goes to the normal hook."""
    previous = sys.unraisablehook

    def hook(unraisable):
        obj = getattr(unraisable, "object", None)
        owner = getattr(obj, "__qualname__", "") + " " + getattr(obj, "__module__", "")
        if "MDAnalysis" in owner or "Reader" in owner:
            return
        previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        gc.collect()
        sys.unraisablehook = previous
