"""CUDA path (run by benchmarks/gpu_check.sh on a GPU machine; skipped where CUDA is absent)."""

import io

import numpy as np
import openmm
import pytest
from openmm import unit

from solvmd.assembly.system import build_system, load_build
from solvmd.forcefield import create_system
from solvmd.md.engine import run_md
from solvmd.md.protocol import load_protocol
from solvmd.recipe import parse_recipe

pytestmark = pytest.mark.cuda


def _cuda_available() -> bool:
    try:
        platform = openmm.Platform.getPlatformByName("CUDA")
        ctx = openmm.Context(openmm.System(), openmm.VerletIntegrator(0.001), platform)
        del ctx
        return True
    except Exception:
        return False


if not _cuda_available():
    pytest.skip("no CUDA platform on this machine", allow_module_level=True)

RECIPE = {"name": "cuda_tiny", "salts": [{"cation": "Li", "anion": "TFSI", "molarity_M": 1.0}],
          "solvents": [{"species": "DOL", "volume_fraction": 0.5}, {"species": "DME", "volume_fraction": 0.5}],
          "size": {"salt_units": 6}, "forcefield": {"cutoff_nm": 0.9}}


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("cuda") / "build"
    build_system(parse_recipe(RECIPE), out, log=io.StringIO())
    return out


def _forces(system, positions, name, props):
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(name), props)
    ctx.setPositions(positions)
    return ctx.getState(getForces=True).getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)


@pytest.mark.parametrize("mixing", ["split", "fast"])
def test_mixing_forces_on_cuda_match_cpu(build, mixing):
    pdb, _, manifest = load_build(build)
    names = [row["name"] for row in manifest["species"]]
    system = create_system(pdb.topology, names, cutoff_nm=0.9, mixing=mixing, correction_cutoff_nm=0.5,
                           hydrogen_mass_amu=3.0)
    f_cpu = _forces(system, pdb.positions, "CPU", {"Threads": "1"})
    f_gpu = _forces(system, pdb.positions, "CUDA", {"Precision": "mixed"})
    rms = np.sqrt((f_cpu**2).sum(1).mean())
    assert np.sqrt(((f_gpu - f_cpu) ** 2).sum(1).mean()) < 1e-3 * rms


def test_annealed_4fs_run_on_cuda(build, tmp_path):
    protocol = dict(heat_ps=2, anneal_K=450, anneal_ps=4, cool_ps=2, equilibrate_ps=4, production_ps=8,
                    report_interval_ps=0.4, frame_interval_ps=0.4, checkpoint_interval_ps=2, platform="CUDA")
    info = run_md(build, tmp_path / "md", load_protocol(None, protocol), log=io.StringIO())
    assert info["platform"] == "CUDA" and info["precision"] == "mixed" and info["timestep_fs"] == 4.0
    assert info["n_frames"] == 20
    assert 0.9 < info["density_production_mean_g_cm3"] < 1.4
