"""Safe file input and atomic file output: the one place solvmd touches raw bytes.

Output: write to a temporary name in the same folder, flush to disk, then rename, so a
killed job never leaves a file that looks finished. :func:`folder_lock` keeps a second
process out of a folder a run is writing.

Input: :func:`read_yaml` and :func:`read_json` refuse, with one :class:`SolvmdError`
naming the file (and the field where there is one), everything a hand-edited or
damaged file can hold that a parser would otherwise accept or choke on: a missing or
empty file, a folder, a binary or non-UTF-8 file, a file over a size limit, a key
given twice in one mapping, NaN or infinity anywhere, and YAML alias expansion that
blows up into a huge document.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from solvmd.errors import SolvmdError

MAX_YAML_BYTES = 1 << 20  # 1 MiB: recipes, specs and protocols are a few kB
MAX_JSON_BYTES = 64 << 20  # 64 MiB: records written by solvmd are well below this
MAX_VALUES = 200_000  # values in one document after alias expansion


# --------------------------------------------------------------------------- output


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, flushed to disk before the rename."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def finite_json(x: Any) -> Any:
    """``x`` with every non-finite float replaced by None (JSON has no NaN or infinity)."""
    if isinstance(x, dict):
        return {str(k): finite_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite_json(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_json_atomic(path: str | Path, data: dict) -> None:
    """Standard JSON (non-finite numbers as null), written atomically."""
    write_text_atomic(path, json.dumps(finite_json(data), indent=2, sort_keys=False, allow_nan=False) + "\n")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def try_lock_file(path: str | Path) -> int | None:
    """Take an exclusive ``flock`` on ``path`` (created if needed) without waiting and write this
    process's pid into it; returns the open descriptor (the lock lives as long as it, or the
    process, does), or None when another process holds it."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


@contextmanager
def folder_lock(folder: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (created if needed) while the block runs.

    A second process asking for the same folder gets one :class:`SolvmdError` naming the
    folder and the process holding it, instead of both writing the same checkpoints and
    trajectory. The lock is the operating system's (:func:`try_lock_file` on
    ``<folder>/.lock``): it dies with its process, so a killed run leaves no stale lock behind."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = try_lock_file(folder / ".lock")
    if fd is None:
        holder = (folder / ".lock").read_text().strip()
        raise SolvmdError(f"{folder}: {what} is already running there (pid {holder or '?'}); wait for it to "
                          "finish or stop it, then rerun (the run resumes from its last checkpoint)")
    try:
        yield
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- input


def read_text_checked(path: str | Path, what: str, max_bytes: int = MAX_YAML_BYTES) -> str:
    """The text of ``path``; refuses a missing/empty file, a folder, binary or non-UTF-8
    content and files over ``max_bytes``, naming the file and ``what`` it should be."""
    path = Path(path)
    if path.is_dir():
        raise SolvmdError(f"{what} {path} is a folder, not a file")
    if not path.is_file():
        raise SolvmdError(f"{what} file {path} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise SolvmdError(f"{what} file {path} is empty")
    if size > max_bytes:
        raise SolvmdError(f"{what} file {path} is {size} bytes; the limit is {max_bytes} bytes "
                          f"(is it the right file?)")
    data = path.read_bytes()
    if b"\x00" in data:
        raise SolvmdError(f"{what} file {path} is binary (NUL bytes), not text: is it the right file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SolvmdError(f"{what} file {path} is not UTF-8 text (bad byte at offset {err.start})") from None
    if not text.strip():
        raise SolvmdError(f"{what} file {path} is empty (only whitespace)")
    return text


def check_values(data: Any, source: str, max_values: int = MAX_VALUES) -> None:
    """Refuse NaN/infinity anywhere in a parsed document, and documents that expand
    (through shared YAML aliases) to more than ``max_values`` values."""
    count = 0
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        x, where = stack.pop()
        count += 1
        if count > max_values:
            raise SolvmdError(f"{source}: the document expands to more than {max_values} values "
                              "(YAML aliases expanding into a huge or recursive document?); refused")
        if isinstance(x, float) and not math.isfinite(x):
            raise SolvmdError(f"{source}: {where or '(top level)'}: {x} is not allowed; give a finite number")
        if isinstance(x, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k)) for k, v in x.items())
        elif isinstance(x, list):
            stack.extend((v, f"{where}.{i}" if where else str(i)) for i, v in enumerate(x))


def _safe_loader():
    import yaml

    class SafeLoader(yaml.SafeLoader):
        """``yaml.SafeLoader`` that refuses a key given twice in one mapping."""

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen: dict = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        first = seen.get(key)
                    except TypeError:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"unhashable mapping key {key!r}", key_node.start_mark) from None
                    if first is not None:
                        raise _DuplicateKey(f"key {key!r} is given twice in one mapping (lines {first} and "
                                            f"{key_node.start_mark.line + 1}); keep one")
                    seen[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep)

    return SafeLoader


class _DuplicateKey(Exception):
    pass


def read_yaml(path: str | Path, what: str, mapping: bool = False, max_bytes: int = MAX_YAML_BYTES):
    """Parse the YAML (or JSON) file ``path`` safely (see the module docstring).

    ``what`` names the kind of file in messages (e.g. "recipe"); ``mapping=True`` also
    requires the top level to be a mapping."""
    import yaml

    text = read_text_checked(path, what, max_bytes)
    try:
        data = yaml.load(text, Loader=_safe_loader())  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as err:
        raise SolvmdError(f"{path}: {what}: {err}") from None
    except yaml.YAMLError as err:
        raise SolvmdError(f"{path}: malformed YAML in {what}: {' '.join(str(err).split())}") from None
    except RecursionError:
        raise SolvmdError(f"{path}: {what} is nested too deeply; refused") from None
    check_values(data, f"{path}")
    if data is None:
        raise SolvmdError(f"{what} file {path} holds no data (only comments?)")
    if mapping and not isinstance(data, dict):
        raise SolvmdError(f"{path}: a {what} must be a YAML mapping (key: value), got {type(data).__name__}")
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(f"key {k!r} is given twice in one object")
        out[k] = v
    return out


def _no_constant(name: str):
    raise ValueError(f"{name} is not allowed (JSON numbers must be finite)")


def read_json(path: str | Path, what: str, max_bytes: int = MAX_JSON_BYTES) -> dict:
    """Parse a JSON object from ``path`` strictly: no duplicate keys, no NaN/Infinity,
    an object at the top level. Errors name the file, ``what`` it should be, and what
    to do (rerun the step that writes it)."""
    text = read_text_checked(path, what, max_bytes)
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (json.JSONDecodeError, _DuplicateKey, ValueError) as err:
        raise SolvmdError(f"{path}: {what} is not valid JSON ({err}); rerun the step that writes it") from None
    except RecursionError:
        raise SolvmdError(f"{path}: {what} is nested too deeply; rerun the step that writes it") from None
    if not isinstance(data, dict):
        raise SolvmdError(f"{path}: {what} must be a JSON object, got {type(data).__name__}; "
                          "rerun the step that writes it")
    check_values(data, str(path))
    return data
