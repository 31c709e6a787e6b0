"""Checkpoint integrity: SIGKILL at 20 random points over every stage, damaged checkpoints.

Each killed run is a child process running ``run_md`` (a real SIGKILL, no clean-up code
runs), forked from a forkserver that has imported the engine but never created an OpenMM
Context (forking a process whose CPU platform threads exist can deadlock); the finished result must hold exactly the thermo rows and frames of an
uninterrupted run, or the rerun must refuse with a clear error.
"""

import io
import multiprocessing
import os
import time

import MDAnalysis as mda
import numpy as np
import pandas as pd
import pytest

from solvmd.assembly.system import build_system
from solvmd.errors import SolvmdError
from solvmd.md.engine import run_md
from solvmd.md.protocol import load_protocol
from solvmd.recipe import parse_recipe

TINY = {"name": "tiny_resume", "salts": [{"cation": "Li", "anion": "TFSI", "molarity_M": 1.0}],
        "solvents": [{"species": "DME", "volume_fraction": 1.0}], "size": {"salt_units": 4},
        "forcefield": {"cutoff_nm": 0.8}}
# 4 fs with HMR (the defaults), every stage including the anneal: 700 steps, 14 thermo rows, 6 frames
PROTOCOL = dict(friction_per_ps=5.0, heat_ps=0.4, anneal_K=400.0, anneal_ps=0.4, cool_ps=0.4, equilibrate_ps=0.4,
                production_ps=1.2, report_interval_ps=0.2, frame_interval_ps=0.2, checkpoint_interval_ps=0.4,
                minimize_max_iterations=100, platform="CPU")


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "build"
    build_system(parse_recipe(TINY), out, log=io.StringIO())
    return out


@pytest.fixture(scope="module")
def reference(build_dir):
    out = build_dir.parent / "reference"
    run_md(build_dir, out, load_protocol(None, PROTOCOL), log=io.StringIO())
    return _result(out)


def _result(out):
    steps = pd.read_csv(out / "thermo.csv")["step"].tolist()
    u = mda.Universe(str(out / "topology.pdb"), str(out / "traj.xtc"))
    return steps, [round(ts.time, 3) for ts in u.trajectory]


def _rows(path) -> int:
    try:
        return max(0, len(path.read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def _child(build_dir, out) -> None:
    """Run (or resume) quietly; a SIGKILL ends it wherever it is."""
    with open(os.devnull, "w") as devnull:
        run_md(build_dir, out, load_protocol(None, PROTOCOL), log=devnull)


@pytest.fixture(scope="module")
def processes():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["solvmd.md.engine", "solvmd.md.protocol"])
    return ctx


def _kill_at(processes, build_dir, out, rows: int, delay_s: float) -> bool:
    """Start a run, SIGKILL it once thermo.csv has ``rows`` rows plus ``delay_s``; True if it was killed."""
    proc = processes.Process(target=_child, args=(build_dir, out))
    proc.start()
    deadline = time.time() + 120
    while _rows(out / "thermo.csv") < rows and time.time() < deadline and proc.is_alive():
        time.sleep(0.005)
    time.sleep(delay_s)
    alive = proc.is_alive()
    proc.kill()
    proc.join()
    return alive


def test_sigkill_at_20_random_points_gives_the_uninterrupted_result(processes, build_dir, reference, tmp_path):
    rng = np.random.default_rng(20261201)
    out = tmp_path / "md"
    targets = sorted(rng.integers(0, 14, size=20))
    kills = sum(_kill_at(processes, build_dir, out, int(rows), float(rng.uniform(0.0, 0.25))) for rows in targets)
    assert not (out / "md.json").exists() or kills < 20
    info = run_md(build_dir, out, load_protocol(None, PROTOCOL), log=io.StringIO())
    assert kills >= 15, f"only {kills} of 20 kills hit a running job"
    assert _result(out) == reference
    assert info["resumed_from"] is not None
    thermo = pd.read_csv(out / "thermo.csv")
    assert thermo[thermo.stage == "production"]["T_K"].between(200, 450).all()  # never restarted from 0 K


def _killed_in_production(processes, build_dir, out):
    assert _kill_at(processes, build_dir, out, 13, 0.05)  # step 650: checkpoints at 500 (prev) and 600
    assert (out / "production.chk").exists() and (out / "production.prev.chk").exists()


@pytest.mark.parametrize("damage", ["truncate", "empty", "flip"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous(processes, build_dir, reference, tmp_path, damage):
    out = tmp_path / "md"
    _killed_in_production(processes, build_dir, out)
    chk = out / "production.chk"
    data = chk.read_bytes()
    if damage == "truncate":
        chk.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        chk.write_bytes(b"")
    else:
        chk.write_bytes(data[:-100] + bytes(b ^ 0xFF for b in data[-100:]))
    log = io.StringIO()
    info = run_md(build_dir, out, load_protocol(None, PROTOCOL), log=log)
    assert "production.chk" in log.getvalue() and "not used" in log.getvalue()
    assert info["resumed_from"]["stage"] == "production"
    assert _result(out) == reference


def test_all_checkpoints_damaged_is_a_clear_refusal(processes, build_dir, tmp_path):
    out = tmp_path / "md"
    _killed_in_production(processes, build_dir, out)
    for chk in out.glob("*.chk"):
        chk.write_bytes(b"garbage")
    with pytest.raises(SolvmdError, match="no usable checkpoint"):
        run_md(build_dir, out, load_protocol(None, PROTOCOL), log=io.StringIO())
    assert not (out / "md.json").exists()


def test_second_run_in_a_busy_folder_is_refused_and_writes_nothing(build_dir, tmp_path):
    """A folder an MD run holds (folder_lock) refuses a second run_md with one clear error."""
    from solvmd.io import folder_lock

    out = tmp_path / "busy"
    with folder_lock(out, "solvmd md"):
        with pytest.raises(SolvmdError, match=r"busy: solvmd md is already running there \(pid \d+\)"):
            run_md(build_dir, out, load_protocol(None, PROTOCOL), log=io.StringIO())
    assert sorted(p.name for p in out.iterdir()) == [".lock"]
