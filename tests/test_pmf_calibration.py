"""Are the PMF error bars honest, and is the convergence verdict calibrated?

The model (:func:`solvmd.pmf.toy.slow_coupled_adsorption`): an ion's height over a contact
well, a desolvation barrier and flat bulk, with the barrier coupled to a slow coordinate (a
heavier particle hopping in its own double well, integrated correlation time 1.6 ps at 298 K). Its exact PMF is known
(:func:`solvmd.pmf.toy.exact_slow_coupled`). Many independent runs (seeds) of the whole
pipeline, windows through OpenMM, estimate through pymbar:

- **calibration**: the reported 1-sigma errors of F(x) - F(x_ref) at every bin against the
  exact answer, pooled over bins and seeds: the 2-sigma interval must hold the exact value in
  85-99 % of the cases and the mean reported sigma must be 0.6-1.7 x the actual rms error. Both
  for independent windows and for replica exchange. Pooling bins makes ~150 cases, so the
  bounds hold for any seed set and any CPU (a 20-run count alone would hit 100 % coverage by
  chance a third of the time and fail the upper bound); each run's seed is fixed, but the
  assertions are loose enough to survive the CPU-dependent trajectories of OpenMM's kernels.
- **verdict**: windows far too short for the slow coordinate get ``converged: false``; long
  ones get ``converged: true`` (a majority of a few seeds, since a verdict test has its own
  false-alarm rate by construction: about 1-2 % per run at the chosen thresholds).

Runs go two at a time (the CI machine has 2 cores).
"""

from __future__ import annotations

import logging
import warnings
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pytest

from solvmd.pmf import toy

N_SEEDS = 20
CAL = dict(range_nm=[0.3, 0.7], spacing_nm=0.03, k_kJ_mol_nm2=6000.0, equil_ps=20.0, sample_ps=100.0,
           sample_interval_steps=100, exchange_interval_ps=0.4, n_bootstrap=40, checkpoint_ps=200.0, bin_width_nm=0.02)


def _one_run(args) -> dict:
    """Run one seed of the toy through the real pipeline; F, its error and the exact F on the bins."""
    out, sampler, seed, overrides = args
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    from solvmd.pmf.estimate import estimate_pmf
    from solvmd.pmf.umbrella import run_windows

    spec = toy.toy_spec("height", **{**CAL, "sampler": sampler, "seed": seed, **overrides})
    system, pos = toy.slow_coupled_adsorption()
    sx, st = toy.write_inputs(system, pos, Path(out) / "inputs")
    run_windows(sx, st, spec, out)
    res = estimate_pmf(out, spec, plots=False)
    ref = int(np.argmin(np.abs(res.cv_nm - 0.35)))  # the bound well
    boot = res.boot()
    d = boot - boot[:, [ref]]
    return {"F": res.F - res.F[ref], "err": np.nanstd(d, axis=0, ddof=1), "exact": _exact(res.edges, ref),
            "ref": ref, "converged": res.barrier["converged"], "reason": res.barrier["converged_reason"]}


def _exact(edges, ref):
    F = toy.exact_slow_coupled(edges)
    return F - F[ref]


def _runs(tmp_path, sampler: str, seeds, **overrides) -> list[dict]:
    jobs = [(str(tmp_path / f"{sampler}_{s}"), sampler, s, overrides) for s in seeds]
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as ex:
        return list(ex.map(_one_run, jobs))


def _pooled(runs: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(errors actual, errors reported) over every bin but the reference of every run."""
    actual = np.concatenate([np.delete(r["F"] - r["exact"], r["ref"]) for r in runs])
    reported = np.concatenate([np.delete(r["err"], r["ref"]) for r in runs])
    return actual, reported


@pytest.mark.parametrize("sampler", ["independent", "exchange"])
def test_reported_errors_are_calibrated(tmp_path, sampler):
    runs = _runs(tmp_path, sampler, range(1, N_SEEDS + 1))
    actual, reported = _pooled(runs)
    coverage = float(np.mean(np.abs(actual) <= 2.0 * reported))
    ratio = float(np.mean(reported) / np.sqrt(np.mean(actual**2)))
    print(f"{sampler}: 2-sigma coverage {coverage:.3f} over {len(actual)} cases, sigma/rms {ratio:.2f}")
    assert 0.85 <= coverage <= 0.99, f"2-sigma coverage {coverage:.3f} over {len(actual)} cases"
    assert 0.6 <= ratio <= 1.7, f"mean reported sigma / rms error = {ratio:.2f}"


def test_verdict_short_windows_false_long_windows_true(tmp_path):
    short = _runs(tmp_path / "short", "independent", range(1, 5), equil_ps=0.0, sample_ps=10.0)
    long = _runs(tmp_path / "long", "independent", range(1, 5))
    assert sum(not r["converged"] for r in short) >= 3, [r["reason"] for r in short]
    assert sum(bool(r["converged"]) for r in long) >= 3, [r["reason"] for r in long]
