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


@pytest.fixture(autouse=True)
def _locale_restored():
    """Each test starts and ends with the process locale it was given: an OpenCL test (PoCL's
    compiler sets the C locale to "C") must not turn the next test's text reads to ASCII."""
    import locale

    saved = locale.setlocale(locale.LC_ALL)
    yield
    if locale.setlocale(locale.LC_ALL) != saved:
        locale.setlocale(locale.LC_ALL, saved)
