"""Sample until converged (solvmd.pmf.extend): a rerun extends only the windows that carry the
error, or the exchange run, until the target is met or the budget is used, and says which."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from solvmd import records
from solvmd.pmf import toy
from solvmd.pmf.estimate import estimate_pmf
from solvmd.pmf.extend import rounds
from solvmd.pmf.umbrella import run_windows

BASE = dict(range_nm=[0.3, 0.7], spacing_nm=0.05, k_kJ_mol_nm2=3000.0, equil_ps=2.0, sample_ps=10.0,
            sample_interval_steps=50, exchange_interval_ps=0.4, n_bootstrap=20, checkpoint_ps=100.0)


def _rounds_until_done(tmp_path, max_rounds: int = 10, **overrides):
    spec = toy.toy_spec("height", **{**BASE, **overrides})
    system, pos = toy.height_double_well()
    sx, st = toy.write_inputs(system, pos, tmp_path / "inputs")
    history = []
    for _ in range(max_rounds):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_windows(sx, st, spec, tmp_path)
            b = estimate_pmf(tmp_path, spec, plots=False).barrier
        history.append(b["sampling"])
        if b["sampling"]["status"] != "extending":
            return spec, b, history
    raise AssertionError(f"still extending after {max_rounds} rounds: {history}")


def test_independent_windows_extend_only_where_the_error_is(tmp_path):
    spec, b, history = _rounds_until_done(tmp_path, target_error_kJ_mol=0.3, max_sample_ps=60.0)
    first = history[0]
    assert first["status"] == "extending" and first["error_kJ_mol"] > 0.3
    plan = rounds(tmp_path)[0]
    n = len(spec.centers())
    assert plan["segment"] == 2 and 0 < len(plan["windows"]) < n  # the upper half by error share, not all
    for k in range(n):  # planned windows got their segment, the others did not
        assert (tmp_path / records.window_npz(k, 2)).is_file() == (k in plan["windows"])
    assert history[-1]["status"] in ("target met", "budget used")
    if history[-1]["status"] == "target met":
        assert b["dG_barrier_err_kJ_mol"] <= 0.3
    else:
        assert max(history[-1]["sampled_ps_per_window"]) == pytest.approx(60.0, abs=0.2)
        assert "budget" in b["converged_reason"]
    with np.load(tmp_path / records.window_npz(plan["windows"][0], 2)) as z:
        k = plan["windows"][0]
        assert len(z["cv_nm"]) == int(round(plan["extra_ps"][str(k)] * 1000 / 4.0)) // 50  # no re-equilibration


def test_exchange_extends_the_whole_run(tmp_path):
    spec, b, history = _rounds_until_done(tmp_path, sampler="exchange", target_error_kJ_mol=0.05, max_sample_ps=16.0)
    assert history[0]["status"] == "extending"
    assert history[-1]["status"] == "budget used"  # 0.05 kJ/mol cannot be reached in 16 ps
    ex = json.loads((tmp_path / "exchange.json").read_text())
    assert ex["iterations"] == 40  # 16 ps / 0.4 ps, one continuous run
    assert (tmp_path / records.exchange_marker(2)).is_file()
    assert b["converged"] is False and "budget" in b["converged_reason"]


def test_without_a_target_nothing_is_planned(tmp_path):
    spec, b, history = _rounds_until_done(tmp_path, max_rounds=1)
    assert history == [{"status": "no target", "note": history[0]["note"]}]
    assert not (tmp_path / records.EXTEND_JSON).exists()
