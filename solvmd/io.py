"""Atomic file output: write to a temporary name in the same folder, then rename.

A killed job therefore never leaves a file that looks finished.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_yaml(path: str | Path, what: str):
    """Parse the YAML (or JSON) file ``path``; a missing or malformed file is a SolvmdError
    naming ``what`` it should have been (e.g. "recipe", "analysis spec")."""
    import yaml

    from solvmd.errors import SolvmdError

    path = Path(path)
    if not path.is_file():
        raise SolvmdError(f"{what} file {path} does not exist")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SolvmdError(f"{path}: malformed YAML in {what}: {err}") from None
