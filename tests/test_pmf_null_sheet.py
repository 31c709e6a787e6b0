"""Null test for the interface PMF: a sheet whose Lennard-Jones and charges are switched off
is invisible to the liquid, so the height PMF of a particle above it must be flat within
its bootstrap errors (tiny box, CPU, seconds). Positive control: the same sheet with its LJ
on binds the particle at contact, and far from it the PMF flattens to the bulk value."""

import json

import numpy as np
import openmm as mm
import pytest

from solvmd.pmf.barrier import find_adsorption
from solvmd.pmf.estimate import PMFOverlapError, estimate_pmf
from solvmd.pmf_spec import load_spec
from solvmd.pmf.toy import write_inputs
from solvmd.pmf.umbrella import run_windows
from solvmd.pmf.windows import n_windows

BOX_NM = 2.0
FLUID_SPACING_NM = 0.4  # a 5 x 5 x 5 lattice in the 2 nm cube: 15.6 atoms/nm^3, T* = kT/eps = 2.5 (a dense fluid)


def _null_sheet_system(sheet_epsilon=0.0, box_z_nm=BOX_NM, probe_override_eps=0.0):
    """4 x 4 (8 x 8 with ``sheet_epsilon``) frozen sheet atoms at z = 0 with sigma/epsilon/charge off (``sheet_epsilon`` > 0: a
    real LJ wall, sigma 0.355 nm, the positive control), one LJ particle (after the sheet)
    and an argon-like LJ fluid (sigma 0.34 nm, epsilon 0.99 kJ/mol) filling the periodic box
    (``BOX_NM`` wide, ``box_z_nm`` high). ``probe_override_eps`` (kJ/mol): a sheet-probe pair
    override (sigma 0.3275 nm), the analogue of solvmd's metal-ion terms: a site that binds the probe."""
    system = mm.System()
    system.setDefaultPeriodicBoxVectors(mm.Vec3(BOX_NM, 0, 0), mm.Vec3(0, BOX_NM, 0), mm.Vec3(0, 0, box_z_nm))
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
    lat = (np.arange(5) + 0.25) * FLUID_SPACING_NM
    lat_z = (np.arange(round(box_z_nm / FLUID_SPACING_NM)) + 0.25) * FLUID_SPACING_NM
    fluid = np.array([[x, y, z] for x in lat for y in lat for z in lat_z])
    fluid = fluid[np.linalg.norm(fluid - [1.0, 1.0, 0.6], axis=1) > 0.3]  # room for the probe
    for _ in fluid:
        system.addParticle(40.0)
        nb.addParticle(0.0, 0.34, 0.99)
    for i in range(len(sheet)) if probe_override_eps else ():
        nb.addException(i, len(sheet), 0.0, 0.3275, probe_override_eps)
    nb.setExceptionsUsePeriodicBoundaryConditions(True)
    system.addForce(nb)
    pos = np.vstack([sheet, [[1.0, 1.0, 0.6]], fluid])
    return system, pos


def _layout(windows) -> dict:
    """``windows``: a number of evenly spaced windows, or their centres (nm)."""
    return {"n_windows": windows} if isinstance(windows, int) else {"centers_nm": list(windows)}


def _height_pmf(tmp_path, sheet_epsilon, sample_ps=30.0, fill_gaps=0, box_z_nm=BOX_NM, range_nm=(0.3, 0.9), windows=5,
                probe_override_eps=0.0):
    system, pos = _null_sheet_system(sheet_epsilon, box_z_nm, probe_override_eps)
    n_sheet = 64 if sheet_epsilon else 16
    sx, st = write_inputs(system, pos, tmp_path / "inputs")
    spec = load_spec(dict(
        name="null_height", cv={"kind": "height", "cation_atoms": [n_sheet], "surface_atoms": list(range(n_sheet))},
        range_nm=list(range_nm), **_layout(windows), k_kJ_mol_nm2=500.0, init="place", equil_ps=2.0, sample_ps=sample_ps,
        sample_interval_steps=25, timestep_fs=2.0, friction_per_ps=5.0, platform="CPU", n_bootstrap=40, seed=3,
        bin_width_nm=0.05))
    out = tmp_path / "pmf"
    run_windows(sx, st, spec, out, threads=1)
    n0 = len(list(out.glob("window_*.npz")))
    for _ in range(fill_gaps):  # an overlap gap: the proposed windows are added; a rerun samples only them
        try:
            return estimate_pmf(out, spec, plots=False)
        except PMFOverlapError as err:
            assert "Proposed and added" in str(err)
        done = {p: p.stat().st_mtime_ns for p in out.glob("window_*.npz")}
        added = json.loads((out / "added_windows.json").read_text())["windows"]
        assert n_windows(spec, out) == n0 + len(added) and all(w["k_kJ_mol_nm2"] >= 500.0 for w in added)
        run_windows(sx, st, spec, out, threads=1)
        assert {p: p.stat().st_mtime_ns for p in done} == done  # finished windows were not rerun
        assert len(list(out.glob("window_*.npz"))) == n0 + len(added)
    return estimate_pmf(out, spec, plots=False)


def _flat_bins(res, n_sigma: float = 4.0):
    """Per bin: F within ``n_sigma`` of the mean over bins, sigma the bootstrap sd of F(x) - mean(F)
    (+0.3 kJ/mol for binning noise). Measured against the mean, not the lowest bin: the minimum of
    a dozen noisy values sits about 1.5 sigma below their mean, and F - F_min then fails a 3-sigma
    test on a flat profile about one run in three (issue 23: 4.03 kJ/mol at 0.75 nm). 4 sigma keeps
    the family-wise false alarm over ~12 bins below 0.1 %."""
    boot = res.boot()
    dev = boot - np.nanmean(boot, axis=1, keepdims=True)
    sigma = np.maximum(np.nanstd(dev, axis=0, ddof=1), 0.1)
    return np.abs(res.F - np.mean(res.F)) <= n_sigma * sigma + 0.3


# dense where the binding well makes F steep (0.3-0.55 nm): with 11 even windows one seed in four
# still had an overlap gap there after three gap-closing rounds
CONTROL_CENTERS_NM = (0.30, 0.34, 0.38, 0.42, 0.46, 0.50, 0.55, 0.62, 0.70, 0.80, 0.90, 1.00, 1.10, 1.20, 1.30)


def test_real_sheet_binds_and_flattens_far_away(tmp_path):
    """Positive control on the whole profile. The sheet with its LJ on (8 x 8, weakly attractive to
    the fluid) and a sheet-probe pair override (eps 2 kJ/mol, like a metal-ion term) binds the
    probe at contact, far outside the errors, so the null test can fail; and in a box tall enough
    (3.2 nm) that the far end of the range (1.15-1.3 nm) is past the fluid's layering, the PMF
    flattens there to the bulk value within error (docs/science.md section 3, the plateau check)."""
    res = _height_pmf(tmp_path, sheet_epsilon=0.2, probe_override_eps=2.0, sample_ps=30.0, fill_gaps=3,
                      box_z_nm=3.2, range_nm=(0.3, 1.3), windows=CONTROL_CENTERS_NM)
    ads = find_adsorption(res.cv_nm, res.F, res.boot())
    dG, dG_err = ads["dG_ads"]
    drift, drift_err = ads["plateau_drift"]
    # measured with seeds 1-7: dG -10.8 ... -13.6 (+- 1.3 ... 2.0), drift -0.2 ... -2.6 (+- 0.9 ... 1.2)
    assert dG < -5.0 and abs(dG) > 4.0 * dG_err, (dG, dG_err)  # bound at contact vs bulk
    assert abs(drift) <= 3.0 * drift_err + 0.5, (drift, drift_err, res.F.round(2))  # flat far away
    assert not np.all(_flat_bins(res))  # the null test's flatness criterion fails


@pytest.mark.filterwarnings("ignore:no bound-state minimum")
def test_invisible_sheet_gives_flat_height_pmf(tmp_path):
    res = _height_pmf(tmp_path, sheet_epsilon=0.0)
    F, dF = res.F, res.dF
    assert np.all(np.isfinite(F)) and len(F) >= 8
    # errors small enough that flatness is a real test, then flat within 4 sigma of the mean (+0.3 kJ/mol)
    assert np.median(dF) < 1.5
    assert np.all(_flat_bins(res)), (F.round(2), dF.round(2))
    assert abs(res.barrier["dG_kJ_mol"]) <= 4.0 * res.barrier["dG_err_kJ_mol"] + 0.3  # F(bound) is a noisy minimum
    assert res.mbar_wham_max_diff_kJ_mol < 1.0  # MBAR and WHAM agree on the same samples
    # every window sampled around its centre: no drift to report
    assert all(abs(d) < 3.0 for d in res.info["window_drift_sigma"])
    assert res.info["min_neighbour_overlap"] > 0.03
    assert res.windows[0].k_kJ_mol_nm2 == pytest.approx(500.0)
