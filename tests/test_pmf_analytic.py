"""Analytic PMF tests: a particle in a known double well, sampled with the umbrella machinery.

U(x) = 10 kJ/mol ((x - 0.5)^2 / 0.15^2 - 1)^2: wells at 0.35 and 0.65 nm, barrier 10 kJ/mol.
Exact references are bin averages of exp(-U/kT) over the estimator's own bins.
"""

import json

import numpy as np
import pandas as pd
import pytest

from solvmd.pmf import toy
from solvmd.pmf_spec import KJ_PER_KCAL

TOL_PMF = 0.5  # kJ/mol, the criterion
TOL_WHAM = 1.0


def _aligned_max_dev(F, exact):
    d = np.asarray(F) - np.asarray(exact)
    return float(np.max(np.abs(d - d.mean())))


@pytest.fixture(scope="module")
def height_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pmf_height")
    spec, res = toy.run_toy("height", out)
    return out, spec, res


@pytest.fixture(scope="module")
def distance_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results") / "toy" / "pmf" / "toy_distance"
    spec, res = toy.run_toy("distance", out)
    return out, spec, res


def test_height_pmf_matches_exact_double_well(height_run):
    out, spec, res = height_run
    exact = toy.exact_binned(res.edges)
    dev = _aligned_max_dev(res.F, exact)
    assert dev < TOL_PMF, f"max |F - U| = {dev:.3f} kJ/mol"
    # a Cartesian CV has no volume term: both conventions are the same curve
    np.testing.assert_allclose(res.F_with, res.F_without, atol=1e-9)
    assert res.mbar_wham_max_diff < TOL_WHAM
    assert res.info["min_neighbour_overlap"] > 0.03
    assert all(g >= 1.0 for g in res.info["statistical_inefficiency"])
    # bootstrap errors are sensible: not zero, not larger than the deviations allow
    assert 0.02 < np.median(res.dF) < 0.5


def test_height_barrier_json(height_run):
    out, spec, res = height_run
    b = json.loads((out / "barrier.json").read_text())
    exact = toy.exact_binned(res.edges)
    x = res.cv_nm
    ib, it = np.argmin(np.abs(x - 0.35)), np.argmin(np.abs(x - 0.5))
    assert abs(b["bound_state"]["cv_nm"] - 0.35) <= 1.01 * (x[1] - x[0])
    assert abs(b["transition_state"]["cv_nm"] - 0.5) <= 1.01 * (x[1] - x[0])
    exact_barrier = exact[it] - exact[ib]  # ~10 kJ/mol on these bins
    assert abs(b["dG_barrier_kJ_mol"] - exact_barrier) < max(TOL_PMF, 3 * b["dG_barrier_err_kJ_mol"])
    assert 0 < b["dG_barrier_err_kJ_mol"] < 0.5
    assert b["dG_barrier_kcal_mol"] == pytest.approx(b["dG_barrier_kJ_mol"] / KJ_PER_KCAL, abs=1e-3)
    exact_dG = exact[-1] - exact[ib]
    assert abs(b["dG_kJ_mol"] - exact_dG) < max(TOL_PMF, 3 * b["dG_err_kJ_mol"])
    assert b["volume_term"] == "none"
    assert not b["ts_at_range_end"] and b["bound_minimum_found"]


def test_window_files_carry_restraint(height_run):
    out, spec, res = height_run
    centers = spec.centers()
    for k, c in enumerate(centers):
        with np.load(out / f"window_{k}.npz") as z:
            assert float(z["r0_nm"]) == pytest.approx(c)
            assert float(z["k_kJ_mol_nm2"]) == spec.k_kJ_mol_nm2
            assert float(z["temperature_K"]) == spec.temperature_K
            assert float(z["timestep_fs"]) == spec.timestep_fs
            assert len(z["cv_nm"]) == spec.n_samples
            # the restrained mean sits within a few sigma of the centre
            assert abs(np.mean(z["cv_nm"]) - c) < 0.03
    assert not list(out.glob("*.partial.npz")) and not list(out.glob("*.chk.xml"))
    for png in ("pmf.png", "overlap.png", "histograms.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_distance_pmf_both_volume_conventions(distance_run):
    out, spec, res = distance_run
    no_vol = toy.exact_binned(res.edges, radial=True, volume=False)  # = U(r)
    with_vol = toy.exact_binned(res.edges, radial=True, volume=True)  # = U(r) - 2kT ln r
    d1 = _aligned_max_dev(res.F_without, no_vol)
    d2 = _aligned_max_dev(res.F_with, with_vol)
    assert d1 < TOL_PMF and d2 < TOL_PMF, (d1, d2)
    assert res.mbar_wham_max_diff < TOL_WHAM
    # the two conventions differ by exactly 2kT ln r (up to a constant)
    diff = res.F_without - res.F_with - 2 * res.kT * np.log(res.cv_nm)
    assert np.ptp(diff) < 1e-9
    df = pd.read_csv(out / "pmf.csv")
    assert list(df.columns[:3]) == ["cv_nm", "F_kJ_mol", "dF_kJ_mol"]
    assert {"F_with_volume_kJ_mol", "F_without_volume_kJ_mol", "F_wham_kJ_mol"} <= set(df.columns)
    np.testing.assert_allclose(df["F_kJ_mol"], df["F_without_volume_kJ_mol"], atol=1e-4)  # default: removed
    assert df["F_kJ_mol"].min() == pytest.approx(0.0, abs=1e-6)


def test_distance_barrier_reports_both_conventions(distance_run):
    out, spec, res = distance_run
    b = json.loads((out / "barrier.json").read_text())
    assert b["volume_term"] == "removed" and "2kT ln r" in b["volume_term_note"]
    assert b["system"] == "toy" and b["cv"] == "toy_distance" and b["cv_kind"] == "distance"
    # exact: the barrier of U is 10 kJ/mol on the bins at 0.35 -> 0.5 nm
    no_vol = toy.exact_binned(res.edges, radial=True, volume=False)
    x = res.cv_nm
    ib, it = np.argmin(np.abs(x - 0.35)), np.argmin(np.abs(x - 0.5))
    assert abs(b["dG_barrier_kJ_mol"] - (no_vol[it] - no_vol[ib])) < max(TOL_PMF, 3 * b["dG_barrier_err_kJ_mol"])
    other = b["other_volume_term"]
    assert other["volume_term"] == "included"
    # with the volume term the barrier is lower by 2kT ln(r_TS / r_bound) (same points)
    shift = 2 * res.kT * np.log(b["transition_state"]["cv_nm"] / b["bound_state"]["cv_nm"])
    assert other["dG_barrier_kJ_mol"] == pytest.approx(b["dG_barrier_kJ_mol"] - shift, abs=0.3)


def test_umbrella_pmf_agrees_with_unbiased_rdf(distance_run):
    """Same machinery as the bulk check: -kT ln g(r) from an unbiased run vs the umbrella PMF,
    with (raw p(r)) and without (shell-normalised g(r)) the volume term, within error bars."""
    from pymbar import timeseries

    from solvmd.pmf.consistency import compare, rdf_free_energy, unbiased_cv_samples
    from solvmd.pmf.cv import ResolvedCV

    out, spec, res = distance_run
    rcv = ResolvedCV.from_json(out / "cv.json")
    r = unbiased_cv_samples(
        out / "inputs" / "system.xml", out / "init" / "window_1.xml", rcv, n_samples=20000, interval_steps=50,
        temperature_K=spec.temperature_K, timestep_fs=4.0, friction_per_ps=20.0, equil_steps=2000,
        platform="Reference",
    )
    g = timeseries.statistical_inefficiency(r)
    W, dW, F_raw, counts = rdf_free_energy(r, res.edges, res.kT, statistical_inefficiency=g)
    c_no = compare(res.F_without, res.dF_without, W, dW, counts, min_count=100)
    c_with = compare(res.F_with, res.dF_with, F_raw, dW, counts, min_count=100)
    assert c_no["n_bins"] >= 15  # both wells and their flanks are sampled without bias
    for c in (c_no, c_with):
        assert c["max_abs_z"] < 3.0, c  # within the combined error bars
        assert c["max_abs_dev_kJ_mol"] < TOL_PMF, c  # and close in absolute terms
    # the volume term is what separates the two: g(r) against the raw PMF is off by 2kT ln r
    wrong = compare(res.F_with, res.dF_with, W, dW, counts, min_count=100)
    assert wrong["max_abs_dev_kJ_mol"] > 2.0
