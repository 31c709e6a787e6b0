"""MD engine on a tiny real system: outputs, units, readers, resume after kill, blow-up errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import MDAnalysis as mda
import mdtraj
import numpy as np
import pandas as pd
import pytest

from solvmd.assembly.system import build_system, load_build
from solvmd.errors import SimulationError, SolvmdError
from solvmd.md.engine import THERMO_COLUMNS, run_md
from solvmd.md.platforms import choose_platform
from solvmd.md.protocol import load_protocol
from solvmd.recipe import parse_recipe

TINY = {
    "name": "tiny",
    "salts": [{"cation": "Li", "anion": "TFSI", "molarity_M": 1.0}],
    "solvents": [{"species": "DME", "volume_fraction": 1.0}],
    "size": {"salt_units": 4},
    "forcefield": {"cutoff_nm": 0.8},
}
SHORT = dict(timestep_fs=2.0, friction_per_ps=5.0, heat_ps=0.4, equilibrate_ps=0.4, production_ps=1.2, report_interval_ps=0.1,
             frame_interval_ps=0.1, checkpoint_interval_ps=0.2, minimize_max_iterations=200)


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "build"
    build_system(parse_recipe(TINY), out)
    return out


@pytest.fixture(scope="module")
def md_run(build_dir):
    out = build_dir.parent / "md"
    info = run_md(build_dir, out, load_protocol(None, SHORT))
    return out, info


def test_build_outputs(build_dir):
    pdb, system, manifest = load_build(build_dir)
    counts = {row["name"]: row["count"] for row in manifest["species"]}
    assert counts["Li"] == counts["TFSI"] == 4
    assert manifest["charge_scale"] == 0.8 and manifest["seeds"]["packmol"] == 20240601
    charges = [system.getForce(i) for i in range(system.getNumForces())
               if system.getForce(i).__class__.__name__ == "NonbondedForce"][0]
    total = sum(charges.getParticleParameters(i)[0]._value for i in range(system.getNumParticles()))
    assert total == pytest.approx(0.0, abs=1e-6)
    assert "CONECT" in (build_dir / "system.pdb").read_text()
    # default: the split (exact) form of geometric mixing (solvmd.mixing), recorded in the manifest, with HMR
    assert manifest["mixing"] == "split" and manifest["hydrogen_mass_amu"] == 3.0
    assert any(f.getName() == "LennardJonesDispersion" for f in system.getForces())


def test_md_outputs_and_readers(md_run, build_dir):
    out, info = md_run
    thermo = pd.read_csv(out / "thermo.csv")
    assert list(thermo.columns) == THERMO_COLUMNS
    assert thermo["step"].is_unique and thermo["step"].is_monotonic_increasing
    assert len(thermo) == 20  # (0.4 + 0.4 + 1.2 ps) / 0.1 ps
    prod = thermo[thermo.stage == "production"]
    assert 0.7 < prod["density_g_cm3"].mean() < 1.4
    assert 200 < prod["T_K"].mean() < 400
    assert info["platform"] == "CPU" and info["n_frames"] == 12
    for fmt_top in (out / "topology.pdb", build_dir / "system.pdb"):
        u = mda.Universe(str(fmt_top), str(out / "traj.xtc"))
        assert len(u.trajectory) == 12
        assert u.atoms.n_atoms == json.loads((build_dir / "manifest.json").read_text())["n_atoms"]
    times = [ts.time for ts in u.trajectory]
    np.testing.assert_allclose(times, 0.8 + 0.1 * np.arange(1, 13), atol=1e-3)
    t = mdtraj.load(str(out / "traj.xtc"), top=str(out / "topology.pdb"))
    assert t.n_frames == 12 and t.unitcell_lengths is not None


def test_rerun_of_finished_run_is_a_no_op(md_run, build_dir):
    out, info = md_run
    mtime = (out / "traj.xtc").stat().st_mtime
    again = run_md(build_dir, out, load_protocol(None, SHORT))
    assert again == info and (out / "traj.xtc").stat().st_mtime == mtime


def test_changed_protocol_on_finished_run_is_an_error(md_run, build_dir):
    out, _ = md_run
    with pytest.raises(SolvmdError, match="different protocol"):
        run_md(build_dir, out, load_protocol(None, {**SHORT, "production_ps": 2.4}))


@pytest.mark.parametrize("fmt", ["xtc", "dcd"])
def test_killed_run_resumes_without_gap_or_duplicate(build_dir, tmp_path, fmt):
    """Kill `solvmd md` mid-production with SIGKILL, rerun, compare with the uninterrupted run."""
    protocol = {**SHORT, "production_ps": 3.0, "trajectory_format": fmt}
    (tmp_path / "p.yaml").write_text(json.dumps({"md": protocol}))
    out = tmp_path / "md"
    cmd = [sys.executable, "-m", "solvmd.cli", "md", str(build_dir), "-o", str(out), "-p", str(tmp_path / "p.yaml")]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, start_new_session=True)
    index = out / f"traj.{fmt}.frames"
    deadline = time.time() + 300
    while time.time() < deadline:
        if (out / "production.chk").exists() and index.exists() and len(index.read_text().split("\n")) > 6:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "md.json").exists(), "killed before the end: nothing may look finished"
    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
    info = json.loads((out / "md.json").read_text())
    assert info["resumed_from"]["stage"] == "production"
    topology = out / "topology.pdb"
    u = mda.Universe(str(topology), str(out / f"traj.{fmt}"))
    times = np.array([ts.time for ts in u.trajectory])
    expected = 0.8 + 0.1 * np.arange(1, 31)
    assert len(times) == 30
    np.testing.assert_allclose(times, expected, atol=1e-3)
    steps = pd.read_csv(out / "thermo.csv")["step"]
    assert steps.is_unique and list(steps) == list(range(50, 50 * 39, 50))


def test_exploding_energy_names_stage_and_step(build_dir, tmp_path):
    """An energy above the per-atom ceiling stops the run with the stage and step in the message."""
    with pytest.raises(SimulationError, match=r"stage heat, step 50: potential energy"):
        run_md(build_dir, tmp_path / "md", load_protocol(None, {**SHORT, "max_energy_kJ_mol_per_atom": 1e-6}))
    assert not (tmp_path / "md" / "md.json").exists()


def test_foreign_trajectory_is_refused(build_dir, tmp_path):
    out = tmp_path / "md"
    out.mkdir()
    (out / "traj.xtc").write_bytes(b"not ours")
    with pytest.raises(SolvmdError, match="not written by solvmd"):
        run_md(build_dir, out, load_protocol(None, SHORT))


def test_missing_build_is_refused(tmp_path):
    with pytest.raises(SolvmdError, match="not a finished solvmd build"):
        run_md(tmp_path, tmp_path / "md", load_protocol(None, SHORT))


def test_platform_override_and_auto():
    platform, _ = choose_platform("auto")
    assert platform.getName() in ("CUDA", "OpenCL", "CPU")
    names = [p for p in ("CUDA", "OpenCL") if p not in __import__("solvmd.md.platforms").md.platforms.available_platforms()]
    for name in names:
        with pytest.raises(SolvmdError, match="not available"):
            choose_platform(name)


def test_protocol_errors_name_the_field(tmp_path):
    with pytest.raises(SolvmdError, match="md.timestep_fss: unknown field"):
        load_protocol(None, {"timestep_fss": 2})
    with pytest.raises(SolvmdError, match="checkpoint_interval_ps"):
        load_protocol(None, {"frame_interval_ps": 0.3, "checkpoint_interval_ps": 1.0})
