"""Residence times against a synthetic two-state Markov trajectory with known lifetimes."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from solvmd.analysis import AnalysisWarning, analyze, spec_from_dict
from solvmd.analysis import columns as C
from solvmd.analysis.residence import continuous_acf, intermittent_acf
from synthetic import LI, Molecule, build_universe

WATERISH = Molecule("DME", ["O1"], ["O"], np.zeros((1, 3)))


def markov_states(n_pairs, n_frames, p_leave, p_enter, rng):
    """Each row a two-state Markov chain started from its stationary distribution."""
    h = np.zeros((n_pairs, n_frames), bool)
    h[:, 0] = rng.random(n_pairs) < p_enter / (p_enter + p_leave)
    u = rng.random((n_pairs, n_frames))
    for t in range(1, n_frames):
        stay_on = h[:, t - 1] & (u[:, t] >= p_leave)
        turn_on = ~h[:, t - 1] & (u[:, t] < p_enter)
        h[:, t] = stay_on | turn_on
    return h


def markov_universe(h, dt_ps, box=30.0, seed=0):
    """One cation at the box centre; partner k sits 2.0 A away while h[k] is on, 7-11 A away while off."""
    rng = np.random.default_rng(seed)
    P, F = h.shape
    dirs = rng.normal(size=(F, P, 3))
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    r = np.where(h.T, 2.0, rng.uniform(7.0, 11.0, (F, P)))
    centre = np.full(3, box / 2)
    partners = centre + dirs * r[..., None]
    coords = np.concatenate([np.broadcast_to(centre, (F, 1, 3)), partners], axis=1)
    return build_universe([LI] + [WATERISH] * P, coords, [box] * 3 + [90] * 3, dt_ps=dt_ps)


def _spec(**kw):
    d = dict(topology="m", trajectory="m", cation="resname LI", partners={"DME": "resname DME"},
             cutoffs_A={"DME": 3.0}, rdf={"r_max_A": 12.0}, transport={"enabled": False})  # fmt: skip
    d.update(kw)
    return spec_from_dict(d)


def test_markov_lifetimes_are_recovered():
    rng = np.random.default_rng(42)
    a, b, dt = 0.08, 0.01, 0.5  # leave / enter probability per frame, ps per frame
    h = markov_states(60, 2500, a, b, rng)
    u = markov_universe(h, dt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = analyze(_spec(), verbose=False, universe=u)
    row = res["residence"].set_index(C.PARTNER).loc["DME"]
    tau_cont = -dt / math.log(1 - a)  # survival (1-a)^k = exp(-t/tau)
    tau_int = -dt / math.log(1 - a - b)  # intermittent, plateau removed: (1-a-b)^k
    assert row[C.TAU_CONT_1E] == pytest.approx(tau_cont, rel=0.06)
    assert row[C.TAU_1E] == pytest.approx(tau_int, rel=0.06)
    assert row[C.TAU_FIT] == pytest.approx(tau_int, rel=0.06)
    assert row[C.FIT_AMPLITUDE] == pytest.approx(1.0, abs=0.05)
    assert bool(row[C.DECAYED]) and row[C.WARNING] == ""
    assert row[C.FIT_START] > 0 and row[C.FIT_STOP] > row[C.FIT_START]
    acf = res["residence_acf"]
    assert acf[C.ACF].iloc[0] == pytest.approx(1.0) and acf[C.ACF_CONT].iloc[0] == pytest.approx(1.0)


def test_acf_estimators_exact_on_hand_made_series():
    # one pair, contact during frames 2..5 (4 frames) of 10; possible pairs = 1
    h = np.zeros((1, 10), bool)
    h[0, 2:6] = True
    cont = continuous_acf(h, 9)
    # origins in contact: 4; uninterrupted for k frames: 4 - k
    np.testing.assert_allclose(cont[:5], [1, 3 / 4, 2 / 4, 1 / 4, 0])
    # censoring: a run touching the end only counts origins that still have a future
    h2 = np.zeros((1, 10), bool)
    h2[0, 6:] = True  # frames 6..9, cut by the end
    np.testing.assert_allclose(continuous_acf(h2, 3), [1, 1, 1, 1])
    # intermittent with 10 possible pairs (occupancy 0.04): C(k) = sum h h_k/(F-k) / (sum h/F)
    raw = np.array([sum(h[0, t] and h[0, t + k] for t in range(10 - k)) / (10 - k) for k in range(6)]) / 0.4
    occ = 0.4 / 10
    np.testing.assert_allclose(intermittent_acf(h, 10, 5), (raw - occ) / (1 - occ), atol=1e-12)


def test_too_short_trajectory_warns_instead_of_a_silent_number():
    rng = np.random.default_rng(1)
    h = markov_states(20, 60, 0.005, 0.001, rng)  # lifetime ~200 frames, only 60 frames
    h[:5] = True
    u = markov_universe(h, 1.0)
    with pytest.warns(AnalysisWarning, match="too short"):
        res = analyze(_spec(), verbose=False, universe=u)
    row = res["residence"].set_index(C.PARTNER).loc["DME"]
    assert np.isnan(row[C.TAU_1E]) and not row[C.DECAYED]
    assert "too short" in row[C.WARNING]


def test_blockwise_accumulation_equals_one_block():
    from solvmd.analysis.residence import contact_acfs

    rng = np.random.default_rng(3)
    h = markov_states(25, 300, 0.1, 0.02, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = analyze(_spec(residence={"enabled": False}), verbose=False, universe=markov_universe(h, 1.0))
    a = contact_acfs(res.contacts, "DME", 100, pairs_per_block=4096)
    b = contact_acfs(res.contacts, "DME", 100, pairs_per_block=4)
    np.testing.assert_allclose(a[0], b[0], atol=1e-12)
    np.testing.assert_allclose(a[1], b[1], atol=1e-12)
    assert a[2] == b[2] == 25
    # and both equal the estimators applied to the known indicator matrix
    np.testing.assert_allclose(a[1], continuous_acf(h, 100), atol=1e-12)
    np.testing.assert_allclose(a[0], intermittent_acf(h, 25, 100), atol=1e-12)
