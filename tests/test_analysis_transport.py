"""Transport: MSD of unwrapped coordinates, D with its fit window, Nernst-Einstein and
Einstein-Helfand conductivity with formal charges."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from solvmd.analysis import analyze, spec_from_dict
from solvmd.analysis import columns as C
from solvmd.analysis.transport import A2_PS_TO_M2_S, E_CHARGE, K_B, msd_fft
from synthetic import LI, Molecule, build_universe

CL = Molecule("CL", ["Cl1"], ["Cl"], np.zeros((1, 3)))
BOX = 40.0


def _walk(n_ions, n_frames, sigma, rng, paired=False):
    """Unwrapped random-walk trajectories of n_ions cations and n_ions anions."""
    start = rng.uniform(0, BOX, (2 * n_ions, 3))
    steps = rng.normal(scale=sigma, size=(n_frames, 2 * n_ions, 3))
    steps[0] = 0
    x = start + np.cumsum(steps, axis=0)
    if paired:  # every anion rides 2.4 A from its cation: no net charge transport
        x[:, n_ions:] = x[:, :n_ions] + np.array([2.4, 0, 0])
    return x


def _universe(x, dt, charges=None):
    n = x.shape[1] // 2
    u = build_universe([LI] * n + [CL] * n, x % BOX, [BOX, BOX, BOX, 90, 90, 90], dt_ps=dt)  # wrapped atoms
    if charges is not None:
        u.add_TopologyAttr("charges", np.repeat(charges, n))
    return u


def _spec(**kw):
    d = dict(topology="m", trajectory="m", cation="resname LI", partners={"CL": "resname CL"}, anions=["CL"],
             cutoffs_A={"CL": 3.0}, residence={"enabled": False}, rdf={"r_max_A": 4.0},
             charges={"LI": 1, "CL": -1}, temperature_K=300.0)  # fmt: skip
    d.update(kw)
    return spec_from_dict(d)


def _run(u, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return analyze(_spec(**kw), verbose=False, universe=u)


def test_msd_fft_equals_direct_average():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(50, 7, 3)), axis=0)
    direct = [np.mean(np.sum((x[k:] - x[: 50 - k]) ** 2, axis=-1)) for k in range(50)]
    np.testing.assert_allclose(msd_fft(x), direct, rtol=1e-10, atol=1e-10)


def test_diffusion_from_wrapped_trajectory_equals_unwrapped_reference():
    rng = np.random.default_rng(3)
    dt, sigma = 2.0, 0.9  # large steps: atoms cross the boundary many times
    x = _walk(400, 300, sigma, rng)
    res = _run(_universe(x, dt), transport={"remove_com_drift": False, "window": "fraction", "n_blocks": 1,
                                         "fit_start_frac": 0.1, "fit_stop_frac": 0.4})
    tr = res["transport"]
    tr = tr[tr[C.METHOD] == C.MSD_SELF].set_index(C.SPECIES)
    t = np.arange(300) * dt
    for name, sl in (("LI", slice(0, 400)), ("CL", slice(400, 800))):
        ref = np.array([np.mean(np.sum((x[k:, sl] - x[: 300 - k, sl]) ** 2, -1)) for k in range(300)])
        win = (t >= tr.loc[name, C.FIT_START]) & (t <= tr.loc[name, C.FIT_STOP])
        D_ref = np.polyfit(t[win], ref[win], 1)[0] / 6 * A2_PS_TO_M2_S
        assert tr.loc[name, C.D] == pytest.approx(D_ref, rel=1e-4)  # unwrapping is exact
        assert tr.loc[name, C.D] == pytest.approx(sigma**2 / (2 * dt) * A2_PS_TO_M2_S, rel=0.1)  # physics
    assert tr.loc["LI", C.FIT_START] == pytest.approx(0.1 * t[-1], abs=dt)
    assert tr.loc["LI", C.FIT_STOP] == pytest.approx(0.4 * t[-1], abs=dt)


def test_nernst_einstein_and_einstein_helfand_for_paired_ions():
    rng = np.random.default_rng(5)
    dt, sigma, T = 1.0, 0.5, 300.0
    x = _walk(100, 200, sigma, rng, paired=True)
    res = _run(_universe(x, dt))
    tr = res["transport"]
    per = tr[tr[C.METHOD] == C.MSD_SELF].set_index(C.SPECIES)
    ne = tr[tr[C.METHOD] == C.NERNST_EINSTEIN][C.SIGMA].item()
    eh = tr[tr[C.METHOD] == C.EINSTEIN_HELFAND][C.SIGMA].item()
    V = BOX**3 * 1e-30
    expected = E_CHARGE**2 / (V * K_B * T) * (100 * per.loc["LI", C.D] + 100 * per.loc["CL", C.D])
    assert ne == pytest.approx(expected, rel=1e-9)
    assert ne > 0.5  # S/m: 100 ion pairs in a 40 A box diffusing ~1e-9 m2/s
    # the pairs carry no net charge: collective (Einstein-Helfand) conductivity vanishes
    assert abs(eh) < 1e-6 * ne
    assert tr[C.SIGMA_MS_CM].dropna().to_numpy() == pytest.approx(10 * tr[C.SIGMA].dropna().to_numpy())
    assert (tr[C.TEMPERATURE] == T).all() and tr[C.VOLUME].iloc[0] == pytest.approx(BOX**3)


def test_formal_charges_undo_charge_scaling():
    rng = np.random.default_rng(7)
    x = _walk(20, 30, 0.3, rng)
    u = _universe(x, 1.0, charges=[0.8, -0.8])  # force-field charges scaled by 0.8
    res = _run(u, charges={}, charge_scale=0.8)
    tr = res["transport"]
    q = tr[tr[C.METHOD] == C.MSD_SELF].set_index(C.SPECIES)[C.CHARGE]
    assert q["LI"] == 1.0 and q["CL"] == -1.0
    assert res.meta["transport_charges_e"] == {"LI": 1.0, "CL": -1.0}
