import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("SOLVMD_CPU_THREADS", "2")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
