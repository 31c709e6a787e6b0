import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("SOLVMD_CPU_THREADS", "2")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def scale_run(root, tmp_path_factory) -> Path:
    """A tiny system through the whole Snakefile (workstation profile, CPU fallback, two
    umbrella windows) plus the HTML report; shared by the workflow and notebook tests."""
    from scale_workflow import run_scale_workflow

    return run_scale_workflow(root, tmp_path_factory.mktemp("scale"))
