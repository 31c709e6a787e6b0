"""Null test for the interface PMF: a sheet whose Lennard-Jones and charges are switched off
is invisible to the liquid, so the height PMF of a particle above it must be flat within
its bootstrap errors (tiny box, CPU, seconds)."""

import json

import numpy as np
import openmm as mm
import pytest

from solvmd.pmf.estimate import PMFOverlapError, estimate_pmf
from solvmd.pmf.spec import load_spec
from solvmd.pmf.toy import write_inputs
from solvmd.pmf.umbrella import run_windows
from solvmd.pmf.windows import n_windows

BOX_NM = 2.0


def _null_sheet_system(sheet_epsilon=0.0):
    """4 x 4 (8 x 8 with ``sheet_epsilon``) frozen sheet atoms at z = 0 with sigma/epsilon/charge off (``sheet_epsilon`` > 0: a
    real LJ wall, sigma 0.355 nm, the positive control), one LJ particle (after the sheet)
    and an argon-like LJ fluid (sigma 0.34 nm, epsilon 0.99 kJ/mol) filling the periodic box."""
    system = mm.System()
    system.setDefaultPeriodicBoxVectors(mm.Vec3(BOX_NM, 0, 0), mm.Vec3(0, BOX_NM, 0), mm.Vec3(0, 0, BOX_NM))
    nb = mm.NonbondedForce()
    nb.setNonbondedMethod(mm.NonbondedForce.CutoffPeriodic)
    nb.setCutoffDistance(0.8)
    n = 8 if sheet_epsilon else 4  # the positive control's sheet is dense (0.25 nm apart): a wall
    g = (np.arange(n) + 0.5) * BOX_NM / n
    sheet = np.array([[x, y, 0.0] for x in g for y in g])
    for _ in sheet:
        system.addParticle(0.0)  # frozen, like solvmd's sheets
        nb.addParticle(0.0, 0.355 if sheet_epsilon else 0.1, sheet_epsilon)  # LJ and charge off by default
    system.addParticle(7.0)
    nb.addParticle(0.0, 0.30, 0.5)  # the tagged particle (charge off: a neutral probe)
    lat = (np.arange(5) + 0.25) * BOX_NM / 5
    fluid = np.array([[x, y, z] for x in lat for y in lat for z in lat])
    fluid = fluid[np.linalg.norm(fluid - [1.0, 1.0, 0.6], axis=1) > 0.3]  # room for the probe
    for _ in fluid:
        system.addParticle(40.0)
        nb.addParticle(0.0, 0.34, 0.99)
    system.addForce(nb)
    pos = np.vstack([sheet, [[1.0, 1.0, 0.6]], fluid])
    return system, pos


def _height_pmf(tmp_path, sheet_epsilon, sample_ps=30.0, fill_gaps=0):
    system, pos = _null_sheet_system(sheet_epsilon)
    n_sheet = 64 if sheet_epsilon else 16
    sx, st = write_inputs(system, pos, tmp_path / "inputs")
    spec = load_spec(dict(
        name="null_height", cv={"kind": "height", "cation_atoms": [n_sheet], "surface_atoms": list(range(n_sheet))},
        range_nm=[0.3, 0.9], n_windows=5, k_kJ_mol_nm2=500.0, init="place", equil_ps=2.0, sample_ps=sample_ps,
        sample_interval_steps=25, timestep_fs=2.0, friction_per_ps=5.0, platform="CPU", n_bootstrap=40, seed=3,
        bin_width_nm=0.05))
    out = tmp_path / "pmf"
    run_windows(sx, st, spec, out, threads=1)
    for _ in range(fill_gaps):  # an overlap gap: the proposed windows are added; a rerun samples only them
        try:
            return estimate_pmf(out, spec, plots=False)
        except PMFOverlapError as err:
            assert "Proposed and added" in str(err)
        done = {p: p.stat().st_mtime_ns for p in out.glob("window_*.npz")}
        added = json.loads((out / "added_windows.json").read_text())["windows"]
        assert n_windows(spec, out) == 5 + len(added) and all(w["k_kJ_mol_nm2"] >= 500.0 for w in added)
        run_windows(sx, st, spec, out, threads=1)
        assert {p: p.stat().st_mtime_ns for p in done} == done  # finished windows were not rerun
        assert len(list(out.glob("window_*.npz"))) == 5 + len(added)
    return estimate_pmf(out, spec, plots=False)


def test_real_sheet_is_not_flat(tmp_path):
    """Positive control: the same set-up with the sheet's LJ on (a sparse, sticky sheet) binds the
    probe near 0.3 nm: the PMF is not flat, so the null test can fail."""
    res = _height_pmf(tmp_path, sheet_epsilon=1.0, sample_ps=30.0, fill_gaps=3)
    drop = res.F[-1] - res.F[0]  # bulk side minus contact side, kJ/mol (measured ~3.9)
    assert drop > 2.0 and drop > 3.0 * (res.dF[0] + res.dF[-1])


@pytest.mark.filterwarnings("ignore:no bound-state minimum")
def test_invisible_sheet_gives_flat_height_pmf(tmp_path):
    res = _height_pmf(tmp_path, sheet_epsilon=0.0)
    F, dF = res.F, res.dF
    assert np.all(np.isfinite(F)) and len(F) >= 8
    # errors small enough that flatness is a real test, then flat within 3 sigma (+0.3 kJ/mol for binning noise)
    assert np.median(dF) < 1.5
    ref = np.average(F, weights=1.0 / np.maximum(dF, 0.1) ** 2)
    assert np.all(np.abs(F - ref) <= 3.0 * np.maximum(dF, 0.1) + 0.3), (F.round(2), dF.round(2))
    assert abs(res.barrier["dG_kJ_mol"]) <= 3.0 * res.barrier["dG_err_kJ_mol"] + 0.3
    assert res.mbar_wham_max_diff_kJ_mol < 1.0  # MBAR and WHAM agree on the same samples
    # every window sampled around its centre: no drift to report
    assert all(abs(d) < 3.0 for d in res.info["window_drift_sigma"])
    assert res.info["min_neighbour_overlap"] > 0.03
    assert res.windows[0].kspring == pytest.approx(500.0)
