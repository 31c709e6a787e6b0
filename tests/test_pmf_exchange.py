"""Hamiltonian replica exchange between umbrella windows (solvmd.pmf.exchange) on the analytic toys.

Acceptance between identical states is 1 and between far-apart states ~0; exchange and
independent windows agree on the double-well barrier; a killed run resumes from its checksummed
checkpoint (the previous copy when the newest is damaged); a changed spec is refused on resume;
bad specs stop before any MD.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from solvmd.pmf import toy
from solvmd.pmf.estimate import estimate_pmf, load_windows
from solvmd.pmf.exchange import ExchangeLog, ExchangeRun, neighbour_acceptance, round_trips, run_exchange
from solvmd.pmf_spec import PMFSpecError
from solvmd.pmf.umbrella import prepare_windows, run_windows
from solvmd.pmf_spec import predicted_acceptance

FAST = dict(equil_ps=2.0, sample_ps=40.0, exchange_interval_ps=0.4, n_bootstrap=20, checkpoint_ps=8.0,
            range_nm=[0.3, 0.7], spacing_nm=0.05, k_kJ_mol_nm2=3000.0)


def _prepared(tmp_path, **overrides):
    spec = toy.toy_spec("height", **{**FAST, "sampler": "exchange", **overrides})
    system, pos = toy.height_double_well()
    sx, st = toy.write_inputs(system, pos, tmp_path / "inputs")
    prepare_windows(sx, st, spec, tmp_path)
    return spec, sx


def test_acceptance_is_one_between_identical_states_and_zero_between_disjoint():
    n_it, n = 50, 3
    u = np.random.default_rng(0).normal(size=(n_it, n, 1)).repeat(n, axis=2)  # every state the same energy
    same = ExchangeLog(np.tile(np.arange(n), (n_it, 1)), u, np.zeros((n_it, n)), np.zeros((n_it, n, 0), np.int16))
    assert neighbour_acceptance(same)["predicted"] == [1.0, 1.0]
    assert predicted_acceptance([0.5, 0.5 + 1e-9], [3000.0, 3000.0], 2.479) == pytest.approx([1.0], abs=1e-6)
    assert predicted_acceptance([0.3, 0.6], [3000.0, 3000.0], 2.479)[0] < 1e-10
    # unequal force constants take the sampled route; close to the equal-k closed form when nearly equal
    assert predicted_acceptance([0.3, 0.33], [3000.0, 3000.1], 2.479)[0] == pytest.approx(
        predicted_acceptance([0.3, 0.33], [3000.0, 3000.0], 2.479)[0], abs=0.02)


def test_exchange_run_acceptance_and_round_trips(tmp_path):
    spec, sx = _prepared(tmp_path, range_nm=[0.45, 0.6], spacing_nm=None, centers_nm=[0.45, 0.46, 0.6],
                         min_predicted_acceptance=1e-14)
    run_exchange(sx, spec, tmp_path, plots=False)
    ex = json.loads((tmp_path / "exchange.json").read_text())
    assert ex["iterations"] == 100
    assert ex["neighbour_acceptance_predicted"][0] > 0.6  # 0.01 nm apart: flat-PMF prediction 0.81
    assert ex["neighbour_acceptance_predicted"][1] < 0.01  # 0.14 nm apart at k = 3000: disjoint
    assert ex["neighbour_acceptance_observed"][1] < 0.02
    assert len(ex["state_history"]) == 3


def test_round_trips_counts_full_trips():
    path = np.array([[0, 1, 2], [1, 0, 2], [2, 0, 1], [1, 2, 0], [0, 1, 2], [2, 1, 0], [0, 2, 1]])
    assert round_trips(path) == [2, 0, 1]


def test_exchange_agrees_with_independent_windows(tmp_path):
    results = {}
    for sampler in ("independent", "exchange"):
        spec = toy.toy_spec("height", **{**FAST, "sampler": sampler, "sample_ps": 100.0, "seed": 3})
        system, pos = toy.height_double_well()
        out = tmp_path / sampler
        sx, st = toy.write_inputs(system, pos, out / "inputs")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_windows(sx, st, spec, out)
            results[sampler] = estimate_pmf(out, spec, plots=False).barrier
    a, b = results["independent"], results["exchange"]
    err = np.hypot(a["dG_barrier_err_kJ_mol"], b["dG_barrier_err_kJ_mol"])
    assert abs(a["dG_barrier_kJ_mol"] - b["dG_barrier_kJ_mol"]) < 4.0 * err
    assert abs(b["dG_barrier_kJ_mol"] - 10.0) < 4.0 * b["dG_barrier_err_kJ_mol"] + 0.5  # exact 10 kJ/mol
    assert b["sampler"] == "exchange" and a["sampler"] == "independent"


def test_estimate_uses_the_samplers_energies(tmp_path):
    spec, sx = _prepared(tmp_path)
    run_exchange(sx, spec, tmp_path, plots=False)
    ws = load_windows(tmp_path)
    kT = spec.kT
    for w in ws:  # bias-only state energies: exactly the harmonic umbrella of the recorded CV
        r0 = np.array([v.r0_nm for v in sorted(ws, key=lambda v: v.k_index)])
        analytic = 0.5 * spec.k_values()[0] * (w.x[:, None] - r0[None, :]) ** 2 / kT
        np.testing.assert_allclose(w.u_all, analytic, rtol=1e-5, atol=1e-6)
    estimate_pmf(tmp_path, spec, plots=False)
    info = json.loads((tmp_path / "estimate.json").read_text())
    assert info["u_kn_source"].startswith("exchange sampler")
    assert all(g is not None and g >= 1.0 for g in info["statistical_inefficiency_energy"])


def test_resume_after_kill_and_damaged_checkpoint(tmp_path):
    spec, sx = _prepared(tmp_path)
    first = ExchangeRun(sx, spec, tmp_path)
    first.run(30)  # "killed" after 30 iterations: checkpoint every 20 (checkpoint_ps 8 / 0.4)
    chk, prev = tmp_path / "exchange.chk", tmp_path / "exchange.prev.chk"
    assert chk.is_file() and prev.is_file()
    chk.write_bytes(chk.read_bytes()[:-100])  # the newest copy is damaged: truncated
    again = ExchangeRun(sx, spec, tmp_path)
    assert again.resume()
    assert again.sampler.currentIteration == 20  # from the previous, intact copy
    assert again.log.n_iterations == 20
    run_exchange(sx, spec, tmp_path, plots=False)
    with np.load(tmp_path / "exchange.npz") as z:
        assert z["state_of_replica"].shape == (100, 9)
        assert np.all(np.sort(z["state_of_replica"], axis=1) == np.arange(9))  # a permutation every iteration


def test_resume_with_changed_spec_is_refused(tmp_path):
    spec, sx = _prepared(tmp_path)
    ExchangeRun(sx, spec, tmp_path).run(20)
    changed = spec.model_copy(update={"exchange_interval_ps": 0.2})
    with pytest.raises(PMFSpecError, match="exchange_interval_ps: checkpoint 0.4, spec 0.2"):
        ExchangeRun(sx, changed, tmp_path).run(20)


@pytest.mark.parametrize("overrides, message", [
    (dict(spacing_nm=0.2, k_kJ_mol_nm2=20000.0), "would almost never be accepted"),
    (dict(exchange_interval_ps=10.0), "exchange_interval_ps 10.0 must be"),
    (dict(repeats=0), "repeats"),
    (dict(target_error_kJ_mol=0.0), "target_error_kJ_mol"),
    (dict(max_sample_ps=10.0), "max_sample_ps 10.0 is below sample_ps"),
])
def test_bad_exchange_specs_stop_before_md(overrides, message):
    with pytest.raises(PMFSpecError, match=message):
        toy.toy_spec("height", **{**FAST, "sampler": "exchange", **overrides})


def test_stale_windows_are_named_not_diagnosed_as_gaps(tmp_path):
    spec = toy.toy_spec("height", **{**FAST, "sample_ps": 8.0})
    system, pos = toy.height_double_well()
    sx, st = toy.write_inputs(system, pos, tmp_path / "inputs")
    run_windows(sx, st, spec, tmp_path)
    moved = spec.model_copy(update={"range_nm": (0.3, 0.66), "spacing_nm": 0.045})
    from solvmd.pmf.estimate import PMFCoverageError

    with pytest.raises(PMFCoverageError, match=r"stale window files .* made for window 1: r0=0.35 nm"):
        estimate_pmf(tmp_path, moved, plots=False)


def test_gap_windows_added_to_an_exchange_run_sample_independently(tmp_path):
    from solvmd.pmf.windows import write_added_windows

    spec = toy.toy_spec("height", **{**FAST, "sampler": "exchange"})
    system, pos = toy.height_double_well()
    sx, st = toy.write_inputs(system, pos, tmp_path / "inputs")
    run_windows(sx, st, spec, tmp_path)
    write_added_windows(tmp_path, [{"r0_nm": 0.475, "k_kJ_mol_nm2": 6000.0}], "test: a gap")
    run_windows(sx, st, spec, tmp_path)  # the exchange run is done; only the added window runs
    with np.load(tmp_path / "window_9.npz") as z:
        assert "u_all_states" not in z and float(z["r0_nm"]) == 0.475
    res = estimate_pmf(tmp_path, spec, plots=False)
    assert res.info["n_windows"] == 10
    assert res.info["u_kn_source"].startswith("analytic")  # mixed: the analytic bias for all (same numbers)


def test_state_energies_hold_the_umbrella_alone_not_the_contact_hold():
    """Exchange swaps (and MBAR) use the bias group's energy: with a contact-layer hold in the system,
    that energy must still be the umbrella alone, or the PMF would be that of an unheld ion."""
    import openmm as mm

    from solvmd.pmf.cv import BIAS_GROUP, ResolvedCV, add_bias

    system = mm.System()
    for _ in range(3):  # ion, partner, one sheet atom
        system.addParticle(10.0)
    hold = {"groups": [[0], [2]], "height_nm": 0.3, "k_kJ_mol_nm2": 2000.0}
    rcv = ResolvedCV("distance", [[0], [1]], [[1.0], [1.0]], periodic=False, meta={"hold": hold})
    add_bias(system, rcv, k=5000.0, r0=0.4)
    ctx = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    ctx.setPositions([[0.0, 0.0, 0.5], [0.45, 0.0, 0.5], [0.0, 0.0, 0.0]])  # d = 0.45 nm, height 0.5 nm
    e_bias = ctx.getState(getEnergy=True, groups={BIAS_GROUP}).getPotentialEnergy()._value
    e_all = ctx.getState(getEnergy=True).getPotentialEnergy()._value
    assert e_bias == pytest.approx(0.5 * 5000.0 * 0.05**2, rel=1e-6)  # umbrella only
    assert e_all - e_bias == pytest.approx(0.5 * 2000.0 * 0.2**2, rel=1e-6)  # the hold is in the Hamiltonian
